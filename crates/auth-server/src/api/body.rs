//! Request bodies, read strictly.
//!
//! poem-openapi's own `Json`/`Form` payloads answer parse failures with its
//! own status codes and shapes; API.md wants specific ones (400 for broken
//! JSON, 422 naming each missing field, 415 for a non-JSON type, OAuth
//! `invalid_request` for forms). These extractors never fail: they hand the
//! handler a `Result` so the mapping stays in `problem.rs`. For the OpenAPI
//! document they declare the schema of `T`.

use std::marker::PhantomData;

use auth_core::FieldError;
use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

/// API.md: bodies over 64 KiB are refused.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    UnsupportedMediaType,
    TooLarge {
        limit: usize,
    },
    /// Not parseable (broken JSON, not an object, bad encoding, repeated form key).
    Malformed(String),
    /// Parsed, but required fields are missing or of the wrong type.
    Missing(Vec<FieldError>),
    Io,
}

fn media_type(req: &Request) -> Option<String> {
    req.header(header::CONTENT_TYPE).map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

async fn read_limited(req: &Request, body: &mut RequestBody) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let body = body.take().map_err(|_| BodyError::Io)?;
    match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(too_large),
        Err(_) => Err(BodyError::Io),
    }
}

/// A JSON object body whose documented schema is `T`.
#[derive(Debug)]
pub struct JsonObject<T> {
    pub result: Result<JsonFields, BodyError>,
    _schema: PhantomData<T>,
}

/// The fields of a JSON object body. Unknown fields are ignored.
pub struct JsonFields(Map<String, Value>);

/// Bodies carry passwords: `Debug` shows field names only.
impl std::fmt::Debug for JsonFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl JsonFields {
    /// The string fields `names`, in order; every missing or mistyped one is
    /// reported, not just the first.
    pub fn strings<const N: usize>(
        &self,
        names: [&'static str; N],
    ) -> Result<[String; N], BodyError> {
        let mut errors = Vec::new();
        let values = names.map(|name| match self.0.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => {
                errors.push(FieldError::new(name, "is required"));
                String::new()
            }
            Some(_) => {
                errors.push(FieldError::new(name, "must be a string"));
                String::new()
            }
        });
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(BodyError::Missing(errors))
        }
    }
}

impl JsonFields {
    /// Reads optional fields one by one, collecting every type error.
    pub fn reader(&self) -> FieldReader<'_> {
        FieldReader {
            fields: self,
            errors: Vec::new(),
        }
    }
}

/// Optional fields of a JSON object (`null` counts as absent, as in a JSON
/// merge patch); [`finish`](Self::finish) reports every mistyped one.
#[derive(Debug)]
pub struct FieldReader<'a> {
    fields: &'a JsonFields,
    errors: Vec<FieldError>,
}

impl FieldReader<'_> {
    fn read<T>(
        &mut self,
        name: &'static str,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        match self.fields.0.get(name) {
            None | Some(Value::Null) => None,
            Some(value) => {
                let converted = convert(value);
                if converted.is_none() {
                    self.errors
                        .push(FieldError::new(name, format!("must be {expected}")));
                }
                converted
            }
        }
    }

    pub fn string(&mut self, name: &'static str) -> Option<String> {
        self.read(name, "a string", |v| v.as_str().map(str::to_owned))
    }

    pub fn bool(&mut self, name: &'static str) -> Option<bool> {
        self.read(name, "true or false", Value::as_bool)
    }

    pub fn strings(&mut self, name: &'static str) -> Option<Vec<String>> {
        self.read(name, "an array of strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// A required string, reported as missing like [`JsonFields::strings`].
    pub fn required_string(&mut self, name: &'static str) -> String {
        if matches!(self.fields.0.get(name), None | Some(Value::Null)) {
            self.errors.push(FieldError::new(name, "is required"));
        }
        self.string(name).unwrap_or_default()
    }

    pub fn finish(self) -> Result<(), BodyError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(BodyError::Missing(self.errors))
        }
    }
}

async fn read_json_object(req: &Request, body: &mut RequestBody) -> Result<JsonFields, BodyError> {
    let is_json = media_type(req).is_some_and(|mt| {
        mt == "application/json" || (mt.starts_with("application/") && mt.ends_with("+json"))
    });
    if !is_json {
        return Err(BodyError::UnsupportedMediaType);
    }
    parse_json_object(&read_limited(req, body).await?)
}

/// A JSON object, or why the bytes are not one. Public for the fuzzers.
pub fn parse_json_object(bytes: &[u8]) -> Result<JsonFields, BodyError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(JsonFields(map)),
        Ok(_) => Err(BodyError::Malformed(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(BodyError::Malformed(format!("malformed JSON: {e}"))),
    }
}

/// An `application/x-www-form-urlencoded` body whose documented schema is `T`.
#[derive(Debug)]
pub struct UrlEncoded<T> {
    pub result: Result<FormParams, BodyError>,
    _schema: PhantomData<T>,
}

/// Decoded form parameters, in order, duplicates kept (so they can be refused).
#[derive(Default)]
pub struct FormParams(Vec<(String, String)>);

/// Forms carry passwords and tokens: `Debug` shows parameter names only.
impl std::fmt::Debug for FormParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl FormParams {
    /// The value of `name`: `None` when absent or empty (RFC 6749 3.1:
    /// empty counts as omitted), an error when sent more than once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, BodyError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(BodyError::Malformed(format!(
                "the parameter {name} is repeated"
            )));
        }
        // `str::is_empty` spelled out: poem_openapi::types::Type has an `is_empty` too.
        Ok(first.filter(|v| !str::is_empty(v)))
    }

    /// Like [`single`](Self::single), but absent is an error too.
    pub fn required(&self, name: &str) -> Result<&str, BodyError> {
        self.single(name)?
            .ok_or_else(|| BodyError::Malformed(format!("the parameter {name} is missing")))
    }
}

/// Strict decoding: percent-escapes must decode to UTF-8 and NUL is refused,
/// where `form_urlencoded` would silently substitute U+FFFD.
fn decode_component(raw: &str) -> Result<String, BodyError> {
    let plus_as_space = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map_err(|_| BodyError::Malformed("the form is not valid UTF-8".into()))?;
    if decoded.contains('\0') {
        return Err(BodyError::Malformed(
            "the form contains a NUL character".into(),
        ));
    }
    Ok(decoded.into_owned())
}

/// Strictly decoded form parameters. Public for the fuzzers.
pub fn parse_form(bytes: &[u8]) -> Result<FormParams, BodyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| BodyError::Malformed("the form is not valid UTF-8".into()))?;
    let mut params = Vec::new();
    for pair in text.split('&').filter(|p| !str::is_empty(p)) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((decode_component(key)?, decode_component(value)?));
    }
    Ok(FormParams(params))
}

async fn read_form(req: &Request, body: &mut RequestBody) -> Result<FormParams, BodyError> {
    if media_type(req).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(BodyError::UnsupportedMediaType);
    }
    parse_form(&read_limited(req, body).await?)
}

/// Implements `ApiExtractor` for a never-failing body type documented as
/// `$content_type` with `T`'s schema.
macro_rules! body_extractor {
    ($ty:ident, $content_type:literal, $reader:ident) => {
        impl<'a, T: Type> ApiExtractor<'a> for $ty<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                T::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(MetaRequest {
                    description: None,
                    content: vec![MetaMediaType {
                        content_type: $content_type,
                        schema: T::schema_ref(),
                    }],
                    required: true,
                })
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                Ok(Self {
                    result: $reader(request, body).await,
                    _schema: PhantomData,
                })
            }
        }
    };
}

body_extractor!(JsonObject, "application/json", read_json_object);
body_extractor!(UrlEncoded, "application/x-www-form-urlencoded", read_form);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_is_strict() {
        let form = parse_form(b"grant_type=password&username=a%40b.org&password=p+w%20d").unwrap();
        assert_eq!(form.single("username").unwrap(), Some("a@b.org"));
        assert_eq!(form.single("password").unwrap(), Some("p w d"));
        assert_eq!(form.single("scope").unwrap(), None);
        assert!(parse_form(b"a=%FF").is_err());
        assert!(parse_form(b"a=%00").is_err());
        assert!(parse_form(&[b'a', b'=', 0xff]).is_err());
        let repeated = parse_form(b"a=1&a=2").unwrap();
        assert!(repeated.single("a").is_err());
        let empty = parse_form(b"a=&b").unwrap();
        assert_eq!(empty.single("a").unwrap(), None);
        assert!(empty.required("b").is_err());
    }
}

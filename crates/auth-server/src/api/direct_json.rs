//! A JSON response body written straight from `serde`, for large bodies.
//!
//! poem-openapi's `Json<T>` first builds a `serde_json::Value` tree of the
//! whole body (an ordered map per object), then writes it out. For a page
//! of 100 accounts that tree is most of the handler's work (`cargo xtask
//! bench`, admin scenario). `DirectJson<T>` documents the same schema (it
//! is `T`'s) and writes `T` with its `Serialize`, which must produce what
//! `ToJSON` would: the types that use it say so in a test.

use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;
use serde::Serialize;

/// `200 application/json` with `T`'s schema, written by `serde`.
#[derive(Debug)]
pub struct DirectJson<T>(pub T);

impl<T: Type> Payload for DirectJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Room for a page of 100 accounts (~17 KiB) without regrowing the body
/// buffer: doubling from serde_json's default 128 bytes reallocated
/// (and copied) it eight times per page.
const BODY_CAPACITY: usize = 32 * 1024;

impl<T: Type + Serialize + Send> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => Response::builder()
                .content_type(<Self as Payload>::CONTENT_TYPE)
                .body(body),
            Err(error) => {
                tracing::error!(%error, "a response body could not be written");
                poem::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

impl<T: Type + Serialize + Send> ApiResponse for DirectJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// `serialize_with` for times: RFC 3339 with `+00:00`, as poem-openapi's
/// `ToJSON` writes them (serde's own chrono format ends in `Z`).
pub fn rfc3339<S: serde::Serializer>(
    at: &chrono::DateTime<chrono::Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339())
}

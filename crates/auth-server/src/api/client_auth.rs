//! Reading client credentials off a token-endpoint request (RFC 6749 §2.3.1):
//! HTTP Basic, or `client_id` / `client_secret` in the form — never both.

use auth_core::{AuthError, ClientCredentials};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use poem::http::header;
use poem::Request;

use super::body::{BodyError, FormParams};
use super::problem::OAuthError;

/// The credentials a request carries. A malformed Basic header is
/// `invalid_client` (with `WWW-Authenticate: Basic`); two methods at once,
/// or a Basic client id that contradicts the form's, is `invalid_request`.
pub fn credentials(req: &Request, form: &FormParams) -> Result<ClientCredentials, OAuthError> {
    let form_id = form.single("client_id")?.map(str::to_owned);
    let form_secret = form.single("client_secret")?.map(str::to_owned);
    let Some(authorization) = req.header(header::AUTHORIZATION) else {
        return Ok(ClientCredentials {
            id: form_id,
            secret: form_secret,
            basic: false,
        });
    };
    let (id, secret) = basic_credentials(authorization)
        .ok_or(OAuthError::from(AuthError::InvalidClient { basic: true }))?;
    if form_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not Basic and client_secret both",
        ));
    }
    if form_id.as_deref().is_some_and(|f| f != id) {
        return Err(OAuthError::invalid_request(
            "client_id differs from the Basic credentials",
        ));
    }
    Ok(ClientCredentials {
        id: Some(id),
        secret: Some(secret),
        basic: true,
    })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id).ok()?;
    let secret = form_decode(secret).ok()?;
    (!id.is_empty()).then_some((id, secret))
}

fn form_decode(component: &str) -> Result<String, BodyError> {
    let form = super::body::parse_form(format!("v={component}").as_bytes())?;
    Ok(form.single("v")?.unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:s%3Acret+x"));
        assert_eq!(
            basic_credentials(&header),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        let no_colon = format!("Basic {}", STANDARD.encode("app"));
        assert_eq!(basic_credentials(&no_colon), None);
    }
}

//! The credentials a request may carry (SPEC 3, 3.1): the admin token, the gateway token, or a
//! virtual key's secret; each plain or Base64-encoded, in `Authorization: Bearer`, `X-API-Key` or
//! `x-goog-api-key`; tokens compared in constant time.

use base64::Engine;
use salvo::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::domain::keys::looks_like_key;

pub struct TokenCheck {
    token: SecretString,
    /// `APIPROXY_ADMIN_TOKEN`; when unset the gateway token is admin.
    admin: Option<SecretString>,
}

/// What a presented credential turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Admin,
    /// The gateway token; `admin` when no admin token is configured.
    Gateway {
        admin: bool,
    },
    /// Something shaped like a virtual key's secret, for the key store to recognise.
    Key(String),
}

/// Whether `presented`, plain or Base64-decoded, is `expected`. Both comparisons always run, so
/// timing does not tell which form matched.
fn matches(presented: &str, decoded: &[u8], expected: &SecretString) -> bool {
    let expected = expected.expose_secret().as_bytes();
    let plain = presented.as_bytes().ct_eq(expected);
    let encoded = decoded.ct_eq(expected);
    bool::from(plain | encoded) && !expected.is_empty()
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_api_key",
        message,
    )
}

impl TokenCheck {
    pub fn new(token: SecretString, admin: Option<SecretString>) -> Self {
        TokenCheck { token, admin }
    }

    /// What a credential is.
    pub fn recognise(&self, presented: &str) -> Option<Presented> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(presented)
            .unwrap_or_default();
        let is_admin = self
            .admin
            .as_ref()
            .is_some_and(|admin| matches(presented, &decoded, admin));
        let is_gateway = matches(presented, &decoded, &self.token);
        if is_admin {
            Some(Presented::Admin)
        } else if is_gateway {
            Some(Presented::Gateway {
                admin: self.admin.is_none(),
            })
        } else if looks_like_key(presented) {
            Some(Presented::Key(presented.to_string()))
        } else {
            std::str::from_utf8(&decoded)
                .ok()
                .filter(|d| looks_like_key(d))
                .map(|d| Presented::Key(d.to_string()))
        }
    }

    /// Checks the request's headers; `Authorization` wins when both are sent.
    pub fn check(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Presented, ApiError> {
        let credential = if let Some(header) = authorization {
            let (scheme, credential) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
                return Err(unauthorized(
                    "invalid Authorization header, expected 'Bearer <token>'",
                ));
            }
            credential.trim()
        } else {
            match api_key.map(str::trim) {
                Some(key) if !key.is_empty() => key,
                _ => return Err(unauthorized("missing Authorization or X-API-Key header")),
            }
        };
        self.recognise(credential)
            .ok_or_else(|| unauthorized("invalid API token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> TokenCheck {
        TokenCheck::new(SecretString::from("timeline".to_string()), None)
    }

    fn with_admin() -> TokenCheck {
        TokenCheck::new(
            SecretString::from("timeline".to_string()),
            Some(SecretString::from("root-secret".to_string())),
        )
    }

    #[test]
    fn base64_plain_and_x_api_key_forms_are_accepted() {
        let c = check();
        let admin = Presented::Gateway { admin: true };
        assert_eq!(
            c.check(Some("Bearer dGltZWxpbmU="), None),
            Ok(admin.clone())
        );
        assert_eq!(c.check(Some("bearer timeline"), None), Ok(admin.clone()));
        assert_eq!(c.check(None, Some(" dGltZWxpbmU= ")), Ok(admin));
    }

    #[test]
    fn wrong_or_malformed_credentials_are_refused() {
        let c = check();
        for auth in [
            "Bearer nope",
            "Basic dGltZWxpbmU=",
            "Bearer",
            "dGltZWxpbmU=",
            "Bearer dGltZWxpbmU",
        ] {
            let err = c.check(Some(auth), None).unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{auth}");
        }
        assert!(c.check(None, None).is_err());
        assert!(
            c.check(Some("Bearer bad"), Some("dGltZWxpbmU=")).is_err(),
            "Authorization wins"
        );
    }

    #[test]
    fn an_admin_token_takes_admin_away_from_the_gateway_token() {
        let c = with_admin();
        assert_eq!(
            c.check(Some("Bearer root-secret"), None),
            Ok(Presented::Admin)
        );
        assert_eq!(
            c.check(Some("Bearer dGltZWxpbmU="), None),
            Ok(Presented::Gateway { admin: false })
        );
    }

    #[test]
    fn key_shaped_credentials_go_to_the_key_store_plain_or_encoded() {
        let c = with_admin();
        let secret = "sk-apx-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        assert_eq!(c.recognise(secret), Some(Presented::Key(secret.into())));
        assert_eq!(c.recognise(&encoded), Some(Presented::Key(secret.into())));
        assert_eq!(c.recognise("sk-other"), None);
    }
}

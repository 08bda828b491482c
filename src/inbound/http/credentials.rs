//! The gateway token (SPEC 3): `Authorization: Bearer <base64(token)>`, or `X-API-Key` with the same
//! value, or the plain token; compared in constant time.

use base64::Engine;
use salvo::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::ApiError;

pub struct TokenCheck {
    token: SecretString,
}

impl TokenCheck {
    pub fn new(token: SecretString) -> Self {
        TokenCheck { token }
    }

    /// Whether a presented credential is the token, plain or Base64-encoded.
    pub fn accepts(&self, presented: &str) -> bool {
        let expected = self.token.expose_secret().as_bytes();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(presented)
            .unwrap_or_default();
        // Both comparisons always run, so timing does not tell which form matched.
        let plain = presented.as_bytes().ct_eq(expected);
        let encoded = decoded.as_slice().ct_eq(expected);
        bool::from(plain | encoded) && !expected.is_empty()
    }

    /// Checks the request's headers; `Authorization` wins when both are sent.
    pub fn check(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<(), ApiError> {
        let unauthorized = |message: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                message,
            )
        };
        if let Some(header) = authorization {
            let (scheme, credential) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
                return Err(unauthorized(
                    "invalid Authorization header, expected 'Bearer <token>'",
                ));
            }
            return if self.accepts(credential.trim()) {
                Ok(())
            } else {
                Err(unauthorized("invalid API token"))
            };
        }
        match api_key.map(str::trim) {
            Some(key) if !key.is_empty() => {
                if self.accepts(key) {
                    Ok(())
                } else {
                    Err(unauthorized("invalid API token"))
                }
            }
            _ => Err(unauthorized("missing Authorization or X-API-Key header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> TokenCheck {
        TokenCheck::new(SecretString::from("timeline".to_string()))
    }

    #[test]
    fn base64_plain_and_x_api_key_forms_are_accepted() {
        let c = check();
        assert!(c.check(Some("Bearer dGltZWxpbmU="), None).is_ok());
        assert!(c.check(Some("bearer timeline"), None).is_ok());
        assert!(c.check(None, Some(" dGltZWxpbmU= ")).is_ok());
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
}

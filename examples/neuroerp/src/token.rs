//! Signed, expiring bearer tokens: `base64url(claims JSON) . base64url(HMAC-SHA256)`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Token claims: subject (user name) and expiry (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
}

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "invalid token signature",
            TokenError::Expired => "token expired",
        })
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Sign claims with the shared secret.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mut m = mac(secret);
    m.update(body.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{body}.{sig}")
}

/// Verify signature (constant time) and expiry against `now` (Unix seconds).
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, TokenError> {
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(body.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let secret = b"0123456789abcdef-secret";
        let c = Claims {
            sub: "demo".into(),
            exp: 1000,
        };
        let t = sign(secret, &c);
        assert_eq!(verify(secret, &t, 999), Ok(c.clone()));
        assert_eq!(verify(secret, &t, 1000), Err(TokenError::Expired));
        assert_eq!(
            verify(b"another-secret-xxxxxxxx", &t, 0),
            Err(TokenError::BadSignature)
        );
        // Tamper with the claims but keep the signature.
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":99999}"#);
        let sig = t.split_once('.').unwrap().1;
        assert_eq!(
            verify(secret, &format!("{forged_body}.{sig}"), 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(secret, "nodot", 0), Err(TokenError::Malformed));
    }
}

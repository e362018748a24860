//! The JWT claims notif reads and issues, and how they map to a `Principal`.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use notif_core::app::Principal;
use notif_core::ids::{ClientId, UserId};
use notif_core::ports::TokenError;
use serde::{Deserialize, Serialize};

/// `time` as a JWT NumericDate: whole seconds since the Unix epoch (0 before it).
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The claims of an access token (Microsoft identity platform names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user, or the client for app-only tokens.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The user's stable object id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// The client the token was issued to (v2 tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The client the token was issued to (v1 tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Delegated scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// App roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `app` for app-only tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
}

impl Claims {
    /// The principal the claims describe: the user from `oid`, else `sub` (none when
    /// `idtyp` is `app`); the client from `azp`, else `appid`; scopes from `scp`; roles.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaim`] when no client is named or a claim is not a valid id.
    pub fn principal(&self) -> Result<Principal, TokenError> {
        let client = self
            .azp
            .as_deref()
            .or(self.appid.as_deref())
            .ok_or(TokenError::InvalidClaim("azp"))?;
        let client_id = ClientId::new(client).map_err(|_| TokenError::InvalidClaim("azp"))?;
        let app_only = self.idtyp.as_deref() == Some("app");
        let user = if app_only {
            None
        } else {
            let user = self.oid.as_deref().unwrap_or(&self.sub);
            Some(UserId::new(user).map_err(|_| TokenError::InvalidClaim("sub"))?)
        };
        Ok(Principal {
            user,
            client_id,
            scopes: self
                .scp
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>(),
            roles: self.roles.iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegated_claims_prefer_oid_and_azp() {
        let claims = Claims {
            sub: "pairwise-sub".into(),
            oid: Some("user-oid".into()),
            azp: Some("client-a".into()),
            appid: Some("client-b".into()),
            scp: Some("Notifications.ReadWrite.CreatedByApp  openid".into()),
            ..Claims::default()
        };
        let principal = claims.principal().unwrap();
        assert_eq!(principal.user.unwrap().as_str(), "user-oid");
        assert_eq!(principal.client_id.as_str(), "client-a");
        assert_eq!(principal.scopes.len(), 2);
    }

    #[test]
    fn app_tokens_have_no_user() {
        let claims = Claims {
            sub: "svc".into(),
            appid: Some("svc".into()),
            idtyp: Some("app".into()),
            roles: vec!["Notifications.ReadWrite.CreatedByApp".into()],
            ..Claims::default()
        };
        let principal = claims.principal().unwrap();
        assert!(principal.user.is_none());
        assert_eq!(principal.client_id.as_str(), "svc");
        assert_eq!(principal.roles.len(), 1);
    }

    #[test]
    fn a_token_without_client_is_refused() {
        let claims = Claims {
            sub: "u".into(),
            ..Claims::default()
        };
        assert_eq!(claims.principal(), Err(TokenError::InvalidClaim("azp")));
    }
}

//! Cross-device apps, principals, and the CreatedByApp authorization rule.

use std::collections::BTreeSet;

use crate::ids::{AppId, ClientId, HostName, UserId};
use crate::notification::FeedKey;
use crate::platform::Platform;
use crate::subscription::Subscription;

/// The scope (delegated tokens) or app role (app-only tokens) that grants notif access.
pub const SCOPE_CREATED_BY_APP: &str = "Notifications.ReadWrite.CreatedByApp";

/// The name of a push credential in configuration; secrets never live in the domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialRef(pub String);

/// A cross-device app: the unit of isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Its key.
    pub id: AppId,
    /// Its verified host name; the `targetHostName` of its requests.
    pub host_name: HostName,
    /// A name for people.
    pub display_name: String,
    /// Every OAuth client that belongs to it (app service and device clients).
    pub client_ids: BTreeSet<ClientId>,
    /// Push credentials per platform; a platform without one cannot be delivered to.
    pub credentials: Vec<(Platform, CredentialRef)>,
}

impl App {
    /// The credential for `platform`, if the app has one.
    pub fn credential(&self, platform: Platform) -> Option<&CredentialRef> {
        self.credentials
            .iter()
            .find(|(candidate, _)| *candidate == platform)
            .map(|(_, credential)| credential)
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user, when a user is present (delegated token); `None` for app-only tokens.
    pub user: Option<UserId>,
    /// The OAuth client the token was issued to (`azp`, else `appid`).
    pub client_id: ClientId,
    /// Delegated scopes (`scp`).
    pub scopes: BTreeSet<String>,
    /// App roles (`roles`).
    pub roles: BTreeSet<String>,
}

impl Principal {
    /// Whether a user is present (delegated) rather than the app acting alone.
    pub fn is_delegated(&self) -> bool {
        self.user.is_some()
    }

    /// Whether the token grants notif access: the scope for delegated tokens, the app role for
    /// app-only ones.
    pub fn has_notif_permission(&self) -> bool {
        if self.is_delegated() {
            self.scopes.contains(SCOPE_CREATED_BY_APP)
        } else {
            self.roles.contains(SCOPE_CREATED_BY_APP)
        }
    }
}

/// What a principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create or replace, read, change state, delete notifications; read delivery status.
    UseFeed,
    /// Register, list or remove device subscriptions: needs a user on a device, so delegated only.
    ManageSubscriptions,
}

/// Why a principal may not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The token's client belongs to no registered cross-device app.
    #[error("client {0} belongs to no registered app")]
    UnknownClient(ClientId),
    /// The token lacks the scope or app role.
    #[error("the token lacks the {SCOPE_CREATED_BY_APP} permission")]
    MissingPermission,
    /// An app-only token named no subscription id, so no user is known.
    #[error("an app-only token must name the user's subscription id (X-UNS-ID)")]
    SubscriptionIdRequired,
    /// The action needs a user (delegated token).
    #[error("this operation needs a delegated (user) token")]
    UserRequired,
    /// The subscription named does not exist or belongs to another app; the same answer for
    /// both, so an app cannot learn of another app's subscriptions.
    #[error("subscription not found")]
    SubscriptionNotFound,
}

/// Decides the one feed a principal acts in — the CreatedByApp rule.
///
/// `app` is the app the registry found for the principal's client id (`None` when there is
/// none). `subscription` is the subscription an app-only caller named, as found in storage
/// (`None` when it names none or it does not exist). A principal only ever acts in its own
/// app, and a delegated principal only for itself.
///
/// # Errors
/// [`AccessError`] naming why the principal may not act.
pub fn authorize(
    principal: &Principal,
    app: Option<&App>,
    action: Action,
    named_subscription: NamedSubscription<'_>,
) -> Result<FeedKey, AccessError> {
    let app = app
        .filter(|app| app.client_ids.contains(&principal.client_id))
        .ok_or_else(|| AccessError::UnknownClient(principal.client_id.clone()))?;
    if !principal.has_notif_permission() {
        return Err(AccessError::MissingPermission);
    }
    if let Some(user) = &principal.user {
        return Ok(FeedKey {
            app: app.id.clone(),
            user: user.clone(),
        });
    }
    if action == Action::ManageSubscriptions {
        return Err(AccessError::UserRequired);
    }
    match named_subscription {
        NamedSubscription::None => Err(AccessError::SubscriptionIdRequired),
        NamedSubscription::Missing => Err(AccessError::SubscriptionNotFound),
        NamedSubscription::Found(subscription) if subscription.feed.app == app.id => {
            Ok(subscription.feed.clone())
        }
        NamedSubscription::Found(_) => Err(AccessError::SubscriptionNotFound),
    }
}

/// The subscription an app-only caller named, as looked up in storage.
#[derive(Debug, Clone, Copy)]
pub enum NamedSubscription<'a> {
    /// The request named no subscription id.
    None,
    /// It named one that does not exist.
    Missing,
    /// It named this one.
    Found(&'a Subscription),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SubscriptionId;
    use crate::subscription::PushChannel;
    use crate::time::Timestamp;

    fn app(id: &str, clients: &[&str]) -> App {
        App {
            id: AppId::new(id).unwrap(),
            host_name: HostName::new(format!("{id}.example.com")).unwrap(),
            display_name: id.into(),
            client_ids: clients.iter().map(|c| ClientId::new(*c).unwrap()).collect(),
            credentials: vec![],
        }
    }

    fn principal(user: Option<&str>, client: &str, scopes: &[&str], roles: &[&str]) -> Principal {
        Principal {
            user: user.map(|u| UserId::new(u).unwrap()),
            client_id: ClientId::new(client).unwrap(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn subscription(app: &str, user: &str) -> Subscription {
        Subscription {
            id: SubscriptionId::from_parts(1, [1; 10]),
            feed: FeedKey {
                app: AppId::new(app).unwrap(),
                user: UserId::new(user).unwrap(),
            },
            client_id: ClientId::new("device").unwrap(),
            channel: PushChannel::Fcm {
                registration_token: "token".into(),
            },
            created_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(1),
        }
    }

    #[test]
    fn delegated_principal_acts_for_itself_in_its_app() {
        let demo = app("demo", &["svc"]);
        let alice = principal(Some("alice"), "svc", &[SCOPE_CREATED_BY_APP], &[]);
        let feed = authorize(
            &alice,
            Some(&demo),
            Action::UseFeed,
            NamedSubscription::None,
        )
        .unwrap();
        assert_eq!(feed.app.as_str(), "demo");
        assert_eq!(feed.user.as_str(), "alice");
    }

    #[test]
    fn client_of_another_app_is_refused() {
        let demo = app("demo", &["svc"]);
        let intruder = principal(Some("alice"), "other-svc", &[SCOPE_CREATED_BY_APP], &[]);
        assert!(matches!(
            authorize(
                &intruder,
                Some(&demo),
                Action::UseFeed,
                NamedSubscription::None
            ),
            Err(AccessError::UnknownClient(_))
        ));
        assert!(matches!(
            authorize(&intruder, None, Action::UseFeed, NamedSubscription::None),
            Err(AccessError::UnknownClient(_))
        ));
    }

    #[test]
    fn missing_scope_is_refused() {
        let demo = app("demo", &["svc"]);
        let alice = principal(
            Some("alice"),
            "svc",
            &["User.Read"],
            &[SCOPE_CREATED_BY_APP],
        );
        assert_eq!(
            authorize(
                &alice,
                Some(&demo),
                Action::UseFeed,
                NamedSubscription::None
            ),
            Err(AccessError::MissingPermission)
        );
    }

    #[test]
    fn app_only_needs_a_subscription_of_its_own_app() {
        let demo = app("demo", &["svc"]);
        let service = principal(None, "svc", &[], &[SCOPE_CREATED_BY_APP]);
        assert_eq!(
            authorize(
                &service,
                Some(&demo),
                Action::UseFeed,
                NamedSubscription::None
            ),
            Err(AccessError::SubscriptionIdRequired)
        );
        assert_eq!(
            authorize(
                &service,
                Some(&demo),
                Action::UseFeed,
                NamedSubscription::Missing
            ),
            Err(AccessError::SubscriptionNotFound)
        );
        let foreign = subscription("other", "bob");
        assert_eq!(
            authorize(
                &service,
                Some(&demo),
                Action::UseFeed,
                NamedSubscription::Found(&foreign)
            ),
            Err(AccessError::SubscriptionNotFound)
        );
        let own = subscription("demo", "bob");
        let feed = authorize(
            &service,
            Some(&demo),
            Action::UseFeed,
            NamedSubscription::Found(&own),
        )
        .unwrap();
        assert_eq!(feed.user.as_str(), "bob");
        assert_eq!(
            authorize(
                &service,
                Some(&demo),
                Action::ManageSubscriptions,
                NamedSubscription::Found(&own)
            ),
            Err(AccessError::UserRequired)
        );
    }
}

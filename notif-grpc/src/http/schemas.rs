//! The JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of the bodies [`super::json`] reads
//! and writes, and of the other answers; the OpenAPI document's components.

use serde_json::{Value, json};

/// A `$ref` to the component `name`.
pub(crate) fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `{"value": [<name>…]}`.
fn collection_of(name: &str) -> Value {
    json!({
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "array", "items": component(name)}},
    })
}

const TIME: &str = "date-time";

/// Every component schema.
pub(crate) fn all() -> Value {
    let platforms = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Notification": {
            "type": "object",
            "required": ["id", "appNotificationId", "targetHostName", "expirationDateTime",
                         "priority", "payload", "targetPolicy", "createdDateTime", "status",
                         "readState", "userActionState", "changeSeq"],
            "properties": {
                "@odata.context": {"type": "string"},
                "id": {"type": "string", "format": "uuid"},
                "appNotificationId": {"type": "string"},
                "targetHostName": {"type": "string"},
                "groupName": {"type": ["string", "null"]},
                "displayTimeToLive": {"type": ["integer", "null"]},
                "expirationDateTime": {"type": "string", "format": TIME},
                "priority": {"type": "string", "enum": ["0", "1", "2"]},
                "payload": component("Payload"),
                "targetPolicy": {
                    "type": "object",
                    "required": ["platformTypes"],
                    "properties": {"platformTypes": platforms},
                },
                "fallbackPolicy": {"oneOf": [{"type": "null"}, component("FallbackPolicy")]},
                "createdDateTime": {"type": "string", "format": TIME},
                "lastModifiedDateTime": {"type": ["string", "null"], "format": TIME},
                "status": {"type": "string", "enum": ["active", "deleted"]},
                "readState": {"type": "string", "enum": ["unread", "read"]},
                "userActionState": {"type": "string",
                    "enum": ["noInteraction", "activated", "dismissed", "snoozed"]},
                "changeSeq": {"type": "integer", "minimum": 1},
            },
        },
        "Payload": {
            "type": "object",
            "properties": {
                "visualContent": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string"},
                        "body": {"type": ["string", "null"]},
                    },
                },
                "rawContent": {"type": "string"},
            },
        },
        "FallbackPolicy": {
            "type": "object",
            "required": ["platformTypes", "fallbackDelayInSeconds"],
            "properties": {
                "platformTypes": platforms,
                "fallbackDelayInSeconds": {"type": "integer", "minimum": 60, "maximum": 600},
            },
        },
        "NotificationCreate": {
            "type": "object",
            "required": ["targetHostName", "appNotificationId", "payload"],
            "properties": {
                "targetHostName": {"type": "string"},
                "appNotificationId": {"type": "string"},
                "groupName": {"type": "string"},
                "payload": component("Payload"),
                "targetPolicy": {"type": "object", "properties": {"platformTypes": platforms}},
                "fallbackPolicy": {
                    "type": "object",
                    "properties": {
                        "platformTypes": platforms,
                        "fallbackDelayInSeconds": {"type": ["integer", "string"]},
                    },
                },
                "priority": {"type": ["string", "integer"]},
                "displayTimeToLive": {"type": ["integer", "string"]},
                "expirationDateTime": {"type": "string", "format": TIME},
            },
        },
        "NotificationList": {
            "type": "object",
            "required": ["value", "unreadCount"],
            "properties": {
                "@odata.context": {"type": "string"},
                "@odata.nextLink": {"type": "string"},
                "value": {"type": "array", "items": component("Notification")},
                "unreadCount": {"type": "integer", "minimum": 0},
            },
        },
        "ChangeList": {
            "type": "object",
            "required": ["value", "cursor", "hasMore"],
            "properties": {
                "value": {"type": "array", "items": component("Notification")},
                "cursor": {"type": "integer", "minimum": 0},
                "hasMore": {"type": "boolean"},
            },
        },
        "StateChange": {
            "type": "object",
            "properties": {
                "readState": {"type": "string", "enum": ["unread", "read"]},
                "userActionState": {"type": "string",
                    "enum": ["noInteraction", "activated", "dismissed", "snoozed"]},
            },
        },
        "DeliveryStatus": {
            "type": "object",
            "required": ["subscriptionId", "platform", "state", "attempts", "updatedDateTime"],
            "properties": {
                "subscriptionId": {"type": "string", "format": "uuid"},
                "platform": {"type": "string"},
                "state": {"type": "string", "enum": ["pending", "delivered", "retrying",
                    "failed", "endpointGone", "expired", "awaitingFetch", "fetched",
                    "fallbackDelivered"]},
                "detail": {"type": ["string", "null"]},
                "attempts": {"type": "integer", "minimum": 0},
                "updatedDateTime": {"type": "string", "format": TIME},
                "textShortened": {"type": "boolean"},
            },
        },
        "DeliveryStatusList": collection_of("DeliveryStatus"),
        "SubscriptionCreate": {
            "type": "object",
            "description": "A browser's PushSubscription JSON (endpoint, keys.p256dh, keys.auth), or a native channel: channelUri (Windows), registrationToken (Android), deviceToken and topic (iOS).",
            "properties": {
                "platform": {"type": "string"},
                "channelUri": {"type": "string"},
                "registrationToken": {"type": "string"},
                "deviceToken": {"type": "string"},
                "topic": {"type": "string"},
                "environment": {"type": "string", "enum": ["production", "sandbox"]},
                "endpoint": {"type": "string"},
                "keys": {
                    "type": "object",
                    "properties": {"p256dh": {"type": "string"}, "auth": {"type": "string"}},
                },
            },
        },
        "Subscription": {
            "type": "object",
            "required": ["id", "platform", "clientId", "createdDateTime", "expirationDateTime"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "platform": {"type": "string"},
                "clientId": {"type": "string"},
                "createdDateTime": {"type": "string", "format": TIME},
                "expirationDateTime": {"type": "string", "format": TIME},
                "renewed": {"type": "boolean"},
            },
        },
        "SubscriptionList": collection_of("Subscription"),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "innerError": {
                            "type": "object",
                            "properties": {
                                "request-id": {"type": "string"},
                                "date": {"type": "string", "format": TIME},
                            },
                        },
                    },
                },
            },
        },
        "TokenRequest": {
            "type": "object",
            "description": "OAuth 2.0 token request (RFC 6749): client_credentials, refresh_token, or the on-behalf-of jwt-bearer grant.",
            "required": ["grant_type", "client_id"],
            "properties": {
                "grant_type": {"type": "string"},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
                "scope": {"type": "string"},
                "assertion": {"type": "string"},
                "requested_token_use": {"type": "string"},
                "refresh_token": {"type": "string"},
            },
        },
        "SignIn": {
            "type": "object",
            "required": ["client_id", "user"],
            "properties": {"client_id": {"type": "string"}, "user": {"type": "string"}},
        },
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string"},
                "expires_in": {"type": "integer"},
                "refresh_token": {"type": "string"},
                "scope": {"type": "string"},
            },
        },
        "OAuthError": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "error_description": {"type": "string"},
            },
        },
        "OpenIdConfiguration": {
            "type": "object",
            "required": ["issuer", "jwks_uri", "token_endpoint"],
            "properties": {
                "issuer": {"type": "string"},
                "jwks_uri": {"type": "string"},
                "token_endpoint": {"type": "string"},
            },
        },
        "Jwks": {
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object",
                "required": ["kty", "kid"],
                "properties": {"kty": {"type": "string"}, "kid": {"type": "string"}}}}},
        },
        "SandboxPushes": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "array", "items": {"type": "object",
                "required": ["platform", "path", "headers"],
                "properties": {
                    "platform": {"type": "string"},
                    "path": {"type": "string"},
                    "headers": {"type": "object"},
                }}}},
        },
        "OpenApi": {"type": "object", "required": ["openapi", "paths"]},
    })
}

//! Arbitrary tokens never panic the verifier.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_core::ports::TokenVerifier;
use proptest::prelude::*;

use crate::keys::{TestKey, verifier_for};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        prop::sample::select(vec!["none", "HS256", "RS256", "ES256", "key-1", "alice"])
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop::sample::select(vec![
                    "alg", "kid", "typ", "iss", "aud", "exp", "nbf", "sub", "azp", "scp", "roles"
                ])
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_tokens_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        header in json_value(),
        claims in json_value(),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let verifier = verifier_for(&[&TestKey::generate("key-1")]);
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let structured = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        for token in [raw, structured] {
            prop_assert!(runtime.block_on(verifier.verify(&token)).is_err());
        }
    }
}

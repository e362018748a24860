//! RFC 8291 message encryption for Web Push: the `aes128gcm` content coding of RFC 8188 in
//! one record, keyed by ECDH P-256 and HKDF-SHA-256, on aws-lc-rs.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

/// The record size written in the header. RFC 8291 §4 requires it to be greater than the
/// plaintext, the padding delimiter and the tag together; 4,096 (the value of the RFC's
/// example) is above every payload a push service accepts.
const RECORD_SIZE: u32 = 4096;
/// The AES-GCM authentication tag.
const TAG_LEN: usize = 16;
/// An uncompressed P-256 point.
const PUBLIC_KEY_LEN: usize = 65;
/// Salt (16), record size (4), key id length (1), the sender's public key (65).
const HEADER_LEN: usize = 16 + 4 + 1 + PUBLIC_KEY_LEN;
/// RFC 8188 §2: the delimiter that ends the last (here: only) record's plaintext.
const LAST_RECORD_DELIMITER: u8 = 2;

/// Why a message could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EceError {
    /// The subscription's `p256dh` key is not an uncompressed P-256 point.
    #[error("p256dh is not a P-256 public key")]
    PublicKey,
    /// The private key is not a 32-byte P-256 scalar.
    #[cfg(any(test, feature = "sandbox"))]
    #[error("not a P-256 private key")]
    PrivateKey,
    /// The `auth` secret is not 16 bytes.
    #[error("auth must be 16 bytes")]
    Auth,
    /// The plaintext does not fit one record.
    #[error("message too long for one record")]
    TooLong,
    /// The body is not one well-formed `aes128gcm` record for this key.
    #[cfg(any(test, feature = "sandbox"))]
    #[error("not an aes128gcm message for this subscription")]
    Malformed,
    /// The cryptographic library failed.
    #[error("encryption failed")]
    Crypto,
}

/// Encrypts `plaintext` to a subscription's `p256dh` public key and `auth` secret, with a
/// fresh sender key and salt.
///
/// # Errors
/// [`EceError`] for malformed subscription keys or a plaintext that does not fit one record.
pub(crate) fn encrypt(
    plaintext: &[u8],
    ua_public: &[u8],
    auth: &[u8],
) -> Result<Vec<u8>, EceError> {
    let sender = PrivateKey::generate(&ECDH_P256).map_err(|_| EceError::Crypto)?;
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| EceError::Crypto)?;
    encrypt_with(plaintext, ua_public, auth, &sender, salt)
}

/// [`encrypt`] with the sender key and salt given, so the RFC's example can be reproduced.
fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    sender: &PrivateKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() + 1 + TAG_LEN >= RECORD_SIZE as usize {
        return Err(EceError::TooLong);
    }
    let sender_public = sender.compute_public_key().map_err(|_| EceError::Crypto)?;
    let sender_public = sender_public.as_ref();
    let ikm = input_keying_material(sender, ua_public, sender_public, ua_public, auth)?;
    let (key, nonce) = content_key_and_nonce(&ikm, &salt)?;

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(PUBLIC_KEY_LEN as u8);
    body.extend_from_slice(sender_public);
    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(LAST_RECORD_DELIMITER);
    key.seal_in_place_append_tag(nonce, Aad::empty(), &mut record)
        .map_err(|_| EceError::Crypto)?;
    body.extend_from_slice(&record);
    Ok(body)
}

#[cfg(any(test, feature = "sandbox"))]
/// Decrypts a one-record `aes128gcm` push with the subscription's private key (a 32-byte
/// P-256 scalar) and `auth` secret: what a browser does on receipt; the sandbox's Web Push
/// provider uses it to read what it was sent.
///
/// # Errors
/// [`EceError`] for malformed keys, a malformed body, or a body not encrypted to this key.
pub(crate) fn decrypt(body: &[u8], ua_private: &[u8], auth: &[u8]) -> Result<Vec<u8>, EceError> {
    if body.len() < HEADER_LEN + TAG_LEN + 1 || usize::from(body[20]) != PUBLIC_KEY_LEN {
        return Err(EceError::Malformed);
    }
    let (salt, rest) = body.split_at(16);
    let salt: [u8; 16] = salt.try_into().map_err(|_| EceError::Malformed)?;
    let record_size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let sender_public = &rest[5..5 + PUBLIC_KEY_LEN];
    let ciphertext = &rest[5 + PUBLIC_KEY_LEN..];
    // RFC 8291 §4: one record, and `rs` greater than it.
    if ciphertext.len() >= record_size {
        return Err(EceError::Malformed);
    }
    let ua_private =
        PrivateKey::from_private_key(&ECDH_P256, ua_private).map_err(|_| EceError::PrivateKey)?;
    let ua_public = ua_private
        .compute_public_key()
        .map_err(|_| EceError::PrivateKey)?;
    let ikm = input_keying_material(
        &ua_private,
        sender_public,
        sender_public,
        ua_public.as_ref(),
        auth,
    )?;
    let (key, nonce) = content_key_and_nonce(&ikm, &salt)?;
    let mut record = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::empty(), &mut record)
        .map_err(|_| EceError::Malformed)?;
    // RFC 8188 §2: padding is zeros after the delimiter; strip both.
    let end = plaintext
        .iter()
        .rposition(|&byte| byte != 0)
        .ok_or(EceError::Malformed)?;
    if plaintext[end] != LAST_RECORD_DELIMITER {
        return Err(EceError::Malformed);
    }
    record.truncate(end);
    Ok(record)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for part in parts {
        context.update(part);
    }
    context.sign()
}

/// RFC 8291 §3.4: `IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0 || ua_public ||
/// as_public, 32)`. `own` is either side's private key, `peer` the other side's public key.
fn input_keying_material(
    own: &PrivateKey,
    peer: &[u8],
    sender_public: &[u8],
    ua_public: &[u8],
    auth: &[u8],
) -> Result<hmac::Tag, EceError> {
    if auth.len() != 16 {
        return Err(EceError::Auth);
    }
    if peer.len() != PUBLIC_KEY_LEN {
        return Err(EceError::PublicKey);
    }
    let prk_key = agreement::agree(
        own,
        UnparsedPublicKey::new(&ECDH_P256, peer),
        EceError::PublicKey,
        |ecdh_secret| Ok(hmac_sha256(auth, &[ecdh_secret])),
    )?;
    // HKDF-Expand of one block: T(1) = HMAC(PRK, info || 0x01).
    Ok(hmac_sha256(
        prk_key.as_ref(),
        &[b"WebPush: info\0", ua_public, sender_public, &[1]],
    ))
}

/// RFC 8188 §2.2–2.3: the content-encryption key and the nonce, from the salt and the IKM.
fn content_key_and_nonce(
    ikm: &hmac::Tag,
    salt: &[u8; 16],
) -> Result<(LessSafeKey, Nonce), EceError> {
    let prk = hmac_sha256(salt, &[ikm.as_ref()]);
    let cek = hmac_sha256(prk.as_ref(), &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac_sha256(prk.as_ref(), &[b"Content-Encoding: nonce\0", &[1]]);
    let key = UnboundKey::new(&AES_128_GCM, &cek.as_ref()[..16]).map_err(|_| EceError::Crypto)?;
    // One record: its sequence number is 0, so the nonce is the derived one as is.
    let nonce =
        Nonce::try_assume_unique_for_key(&nonce.as_ref()[..12]).map_err(|_| EceError::Crypto)?;
    Ok((LessSafeKey::new(key), nonce))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn decode(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).expect("base64url in the RFC")
    }

    /// RFC 8291 Appendix A, every value as printed there.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn reproduces_rfc_8291_appendix_a_byte_for_byte() {
        let sender = PrivateKey::from_private_key(&ECDH_P256, &decode(AS_PRIVATE)).unwrap();
        let salt: [u8; 16] = decode(SALT).try_into().unwrap();
        let body =
            encrypt_with(PLAINTEXT, &decode(UA_PUBLIC), &decode(AUTH), &sender, salt).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), MESSAGE);
    }

    #[test]
    fn decrypts_rfc_8291_appendix_a() {
        let plaintext = decrypt(&decode(MESSAGE), &decode(UA_PRIVATE), &decode(AUTH)).unwrap();
        assert_eq!(plaintext, PLAINTEXT);
    }

    #[test]
    fn record_size_exceeds_the_record() {
        let ua_private = PrivateKey::generate(&ECDH_P256).unwrap();
        let ua_public = ua_private.compute_public_key().unwrap();
        let plaintext = vec![b'x'; 3993];
        let body = encrypt(&plaintext, ua_public.as_ref(), &[9; 16]).unwrap();
        let record_size = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
        assert!(record_size > plaintext.len() + 1 + TAG_LEN);
        assert_eq!(body.len() - HEADER_LEN, plaintext.len() + 1 + TAG_LEN);
    }

    #[test]
    fn a_record_size_not_above_the_record_is_refused() {
        let mut body = decode(MESSAGE);
        let record_length = u32::try_from(body.len() - HEADER_LEN).unwrap();
        body[16..20].copy_from_slice(&record_length.to_be_bytes());
        assert_eq!(
            decrypt(&body, &decode(UA_PRIVATE), &decode(AUTH)),
            Err(EceError::Malformed)
        );
    }

    #[test]
    fn a_tampered_or_foreign_message_is_refused() {
        let mut body = decode(MESSAGE);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert_eq!(
            decrypt(&body, &decode(UA_PRIVATE), &decode(AUTH)),
            Err(EceError::Malformed)
        );
        assert_eq!(
            decrypt(&decode(MESSAGE), &decode(AS_PRIVATE), &decode(AUTH)),
            Err(EceError::Malformed)
        );
        assert_eq!(
            encrypt(b"x", &[4; 10], &decode(AUTH)),
            Err(EceError::PublicKey)
        );
        assert_eq!(
            encrypt(b"x", &decode(UA_PUBLIC), &[1; 3]),
            Err(EceError::Auth)
        );
    }
}

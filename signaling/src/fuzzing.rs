//! Entry points for the fuzz targets in `fuzz/` and their corpus regression
//! tests (see docs/fuzzing.md): the same code the server runs on a client's
//! WebSocket text frame and on an upload's request body. None of them may
//! panic, whatever the input. Not an API: hidden from the docs.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The key the fuzzed tokens are checked against (a fixed test secret).
fn keys() -> &'static crate::auth::Keys {
    static KEYS: OnceLock<crate::auth::Keys> = OnceLock::new();
    KEYS.get_or_init(|| crate::auth::Keys::from_secret(b"giaoban fuzzing key, not secret"))
}

/// A WebSocket text frame as a session reads it: the protocol's one parser
/// ([`crate::protocol::parse`], which the session calls) with the body
/// checks, and the `join` token (and the whole frame, as a bearer token)
/// through the token decoders. Not UTF-8: ignored (the WebSocket layer
/// refuses it).
pub fn client_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::protocol::check_client_message(text);
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(serde_json::Value::String(token)) = o.get("token") {
            let _ = keys().decode(token);
            let _ = keys().decode_staff(token);
        }
    }
    if text.len() < 4096 {
        let _ = keys().decode(text);
        let _ = keys().decode_staff(text);
    }
}

/// The multipart boundary the upload target's bodies use.
pub const UPLOAD_BOUNDARY: &str = "giaobanfuzz";

/// Largest file the upload target accepts (small, to reach the limit).
const UPLOAD_MAX: u64 = 64 * 1024;

struct UploadEnv {
    rt: tokio::runtime::Runtime,
    blobs: cabinet::Blobs,
}

fn upload_env() -> Option<&'static UploadEnv> {
    static ENV: OnceLock<Option<UploadEnv>> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let root: PathBuf =
            std::env::temp_dir().join(format!("giaoban-fuzz-upload-{}", std::process::id()));
        Some(UploadEnv {
            rt,
            blobs: cabinet::Blobs::new(root),
        })
    })
    .as_ref()
}

/// An upload request body (`multipart/form-data` with the boundary
/// [`UPLOAD_BOUNDARY`]) through what `POST /api/agenda/{id}/documents` and
/// `POST /api/documents/{id}/versions` do before the database.
pub fn upload(data: &[u8]) {
    let Some(env) = upload_env() else {
        return;
    };
    let ctype = format!("multipart/form-data; boundary={UPLOAD_BOUNDARY}");
    let _ = env.rt.block_on(crate::api::check_upload(
        &env.blobs,
        UPLOAD_MAX,
        &ctype,
        data.to_vec(),
    ));
}

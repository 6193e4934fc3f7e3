//! Embeds every file under ../web into the binary: generates
//! `$OUT_DIR/web_assets.rs` with a table of `(relative path, include_bytes!)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        // Skip hidden files, editor leftovers and node_modules.
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with('~') || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(std::io::Error::other)?);
    let web = manifest.join("..").join("web");
    println!("cargo:rerun-if-changed=../web");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    walk(&web, &mut files)?;
    let mut code = String::from("/// Files of web/, embedded: (path relative to web/, content).\n");
    code.push_str("pub static WEB_ASSETS: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f
            .strip_prefix(&web)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .replace('\\', "/");
        let abs = f.canonicalize()?;
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            rel,
            abs.to_string_lossy()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    std::fs::write(out.join("web_assets.rs"), code)
}

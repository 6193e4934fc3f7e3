//! Rebuilds the crate when a migration is added or changed (the embedded
//! `sqlx::migrate!` list would otherwise go stale).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! The audit log: standalone events (logins, downloads, joins...) appended
//! outside any other write.

use crate::{Pool, Result, Store};

impl Store {
    /// Appends one audit event in its own transaction (for facts that are
    /// not part of another write: a login, a download, a join). `detail` is
    /// any JSON; never put secrets (passwords, tokens) in it.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        target_type: &str,
        target_id: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        in_tx!(self, tx => {
            audit!(tx, actor, action, target_type, target_id, detail);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn record_audit_appends_to_the_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.expect("open");
        store
            .record_audit(
                "user:u1",
                "auth.login",
                "user",
                "u1",
                serde_json::json!({"ip": "10.0.0.1"}),
            )
            .await
            .expect("record");
        let log = store.audit_log(10).await.expect("log");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "auth.login");
        assert_eq!(log[0].detail["ip"], "10.0.0.1");
        assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    }
}

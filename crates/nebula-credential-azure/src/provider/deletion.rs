//! `delete`, and what a store after a delete needs: tombstones, the soft delete, purge,
//! recover, and the vault's purge protection.
//!
//! A delete makes our current version a tombstone (an update of that version, by its id:
//! content type [`TOMBSTONE_CONTENT_TYPE`], our marker and id tags, other tools' tags; its
//! value stays) before the soft delete, so a later recover — ours before a store, or
//! Azure's — exposes only the tombstone, which reads as absent: a deleted record is never
//! served again. Because the update names the version our GET read, a secret another tool
//! wrote since stays current, unharmed, and the DELETE's answer shows it. Purge mode writes one only on a vault with purge
//! protection (read from the current version's `recoveryLevel`): elsewhere the purge leaves
//! nothing to recover. The DELETE answers with the tags of what it
//! deleted; if another tool's secret had replaced ours in between, it is recovered at once
//! and the delete reports `Conflict` (in purge mode too: a foreign secret is never left
//! soft-deleted, never purged).

use azure_security_keyvault_secrets::models::{
    DeletedSecret, DeletionRecoveryLevel, SecretAttributes, SecretClientUpdateSecretPropertiesOptions,
    UpdateSecretPropertiesParameters,
};

use super::*;

/// The value of a tombstone version, set when the current version's id is unknown.
const TOMBSTONE_VALUE: &str = "deleted";

/// The recovery level of `attributes` when it rules out purging (purge protection), e.g.
/// `Recoverable`; `None` when purging is allowed or the level is not given.
pub(super) fn unpurgeable(attributes: &SecretAttributes) -> Option<String> {
    let level = attributes.recovery_level.as_ref()?;
    let purgeable = match level {
        DeletionRecoveryLevel::Purgeable
        | DeletionRecoveryLevel::RecoverablePurgeable
        | DeletionRecoveryLevel::CustomizedRecoverablePurgeable => true,
        DeletionRecoveryLevel::UnknownValue(v) => v.split('+').any(|p| p.eq_ignore_ascii_case("Purgeable")),
        _ => false,
    };
    (!purgeable).then(|| level.to_string())
}

/// The data action a tombstone for `current` needs: an update of its version, or a set.
fn tombstone_action(current: &Current) -> &'static str {
    if current.version.is_some() { UPDATE } else { SET }
}

impl AzureKeyVaultProvider {
    pub(super) async fn delete_now(&self, id: &CredentialId) -> Result<(), StorageError> {
        let name = self.secret_name(id);
        let (mut round, mut redeletes) = (0, 0);
        // Set once a DELETE answered that a tombstone was due (its `recoveryLevel` or a
        // store that slipped in): every later round writes one, whatever the GET says.
        let mut tombstone_due = false;
        loop {
            // A secret being recovered reads as 404 too, and is live again moments later:
            // so a DELETE is sent even when the GET finds nothing (409
            // `ObjectIsBeingRecovered` tells); it waits for the recover, then deletes.
            // Purge mode needs no tombstone (nothing is left to recover) unless the vault's
            // purge protection will keep the deleted secret: a tombstone costs an update, and
            // without it the DELETE follows the GET at once, so the DELETE's answer covers
            // every write another tool could slip in.
            let soft = self.config.delete_mode == DeleteMode::Soft;
            if let Some(current) = self.current(id, &name, Operation::Delete).await?
                && !current.tombstone
                && (soft || current.protected || tombstone_due)
            {
                match self.write_tombstone(id, &name, &current).await {
                    Ok(()) => {}
                    // Deleted or being recovered meanwhile (a concurrent delete, say): the
                    // DELETE below answers for that (404 or 409).
                    Err(e) if matches!(e.kind, Kind::NotFound | Kind::BeingDeleted | Kind::BeingRecovered) => {}
                    Err(e) => {
                        return Err(e.into_storage(self.ctx(
                            Operation::Delete,
                            Some(id),
                            Access::Write,
                            tombstone_action(&current),
                        )));
                    }
                }
            }
            match self
                .client
                .delete_secret(&name, None)
                .await
                .and_then(|r| r.into_model())
            {
                Ok(deleted) => {
                    if self.after_delete(id, &name, deleted).await? {
                        return Ok(());
                    }
                    // A store of ours landed between the tombstone and the DELETE: it was
                    // recovered; tombstone and delete again (bounded, like every wait).
                    tombstone_due = true;
                    redeletes += 1;
                    if redeletes > WAITS.rounds {
                        return Err(StorageError::unavailable(PROVIDER, Operation::Delete, Some(id)));
                    }
                }
                Err(e) => {
                    let e = AzError::from(e);
                    let purging = self.config.delete_mode == DeleteMode::Purge;
                    match e.kind {
                        Kind::BeingRecovered => self.wait(&mut round, Operation::Delete, id, e).await?,
                        // A delete still in progress (another client's, or ours before a
                        // purge that timed out): purge mode waits for it, then purges.
                        Kind::BeingDeleted if purging => return self.purge(id, &name).await,
                        Kind::NotFound if purging => return self.purge_leftover(id, &name).await,
                        Kind::NotFound | Kind::BeingDeleted => return Ok(()),
                        _ => {
                            return Err(e.into_storage(self.ctx(Operation::Delete, Some(id), Access::Write, DELETE)));
                        }
                    }
                }
            }
        }
    }

    /// Makes our current version a tombstone, keeping other tools' tags: an update of that
    /// version, by its id (tombstone content type, tombstone tags), so a secret another tool
    /// wrote since our GET stays current, and the DELETE's answer shows it. Without a
    /// version id, a tombstone version is set instead.
    async fn write_tombstone(&self, id: &CredentialId, name: &str, current: &Current) -> Result<(), AzError> {
        let tags = tags::merged(&current.tags, &tags::tombstone(id));
        let Some(version) = &current.version else {
            return self
                .set(
                    id,
                    name,
                    TOMBSTONE_VALUE,
                    TOMBSTONE_CONTENT_TYPE,
                    tags,
                    Operation::Delete,
                )
                .await
                .map(drop);
        };
        let params = UpdateSecretPropertiesParameters {
            content_type: Some(TOMBSTONE_CONTENT_TYPE.into()),
            tags: Some(tags.into_iter().collect()),
            ..Default::default()
        };
        let options = SecretClientUpdateSecretPropertiesOptions {
            secret_version: Some(version.clone()),
            ..Default::default()
        };
        let request = params.try_into().map_err(AzError::from)?;
        self.client
            .update_secret_properties(name, request, Some(options))
            .await
            .map(drop)
            .map_err(AzError::from)
    }

    /// What the DELETE deleted, by the tags it answered with: another tool's secret is
    /// recovered and reported as `Conflict`; ours is purged in purge mode, unless the
    /// vault's purge protection rules that out. `Ok(false)` when the deleted version is a
    /// record of ours where a tombstone was due (soft mode, or purge protection): a store
    /// landed between our tombstone and our DELETE, and a later recover would serve the
    /// record whose delete we acknowledge; it is recovered, so the caller deletes again.
    async fn after_delete(&self, id: &CredentialId, name: &str, deleted: DeletedSecret) -> Result<bool, StorageError> {
        if let Err(foreign) = self.ensure_ours(id, name, &tag_map(deleted.tags)) {
            return Err(self.recover_foreign(id, name, foreign).await);
        }
        let protected = deleted.attributes.as_ref().and_then(unpurgeable);
        let tombstone_due = self.config.delete_mode == DeleteMode::Soft || protected.is_some();
        // A record's content type (not a tombstone's); an answer without one is taken as is.
        let record = deleted.content_type.as_deref().is_some_and(|c| !is_tombstone(Some(c)));
        if tombstone_due && record {
            self.recover(id, name).await?;
            return Ok(false);
        }
        if self.config.delete_mode == DeleteMode::Purge {
            if let Some(level) = protected {
                return Err(self.purge_protected(id, name, &level));
            }
            self.purge(id, name).await?;
        }
        Ok(true)
    }

    /// Recovers the secret our DELETE deleted (intact, all its versions), once the delete
    /// has completed.
    async fn recover(&self, id: &CredentialId, name: &str) -> Result<(), StorageError> {
        let mut round = 0;
        loop {
            match self
                .client
                .recover_deleted_secret(name, None)
                .await
                .map_err(AzError::from)
            {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind, Kind::NotFound | Kind::BeingDeleted) => {
                    self.wait(&mut round, Operation::Delete, id, e).await?;
                }
                Err(e) => return Err(e.into_storage(self.ctx(Operation::Delete, Some(id), Access::Write, RECOVER))),
            }
        }
    }

    /// Recovers another tool's secret our DELETE deleted; the error to report: `foreign`,
    /// or, when the recover failed, a `Conflict` saying that secret is left soft-deleted
    /// and how to recover it (the recover's error as its source).
    async fn recover_foreign(&self, id: &CredentialId, name: &str, foreign: StorageError) -> StorageError {
        match self.recover(id, name).await {
            Ok(()) => foreign,
            Err(e) => StorageError::conflict(
                PROVIDER,
                id,
                format!(
                    "{name:?} held another tool's secret when our DELETE reached it (written after our check), and                      recovering it failed ({e}): it is soft-deleted; recover it now (`az keyvault secret recover \
                     --vault-name VAULT --name {name}`) and give this provider a secret_prefix no other tool writes"
                ),
            )
            .with_source(e),
        }
    }

    /// The error of a purge-mode delete on a vault with purge protection: the secret is
    /// soft-deleted and stays so until its retention ends.
    fn purge_protected(&self, id: &CredentialId, name: &str, level: &str) -> StorageError {
        StorageError::backend(
            PROVIDER,
            Operation::Delete,
            Some(id),
            format!(
                "{name:?} was soft-deleted but not purged: the vault has purge protection (recoveryLevel {level}), \
                 so it stays recoverable until its retention ends (storing this id again recovers it, behind a \
                 tombstone); set delete_mode = \"soft\" for this vault"
            ),
        )
        .with_code(None, Some("PurgeProtection"))
    }

    /// Purge mode: waits until the deleted secret is visible, then purges it if it is ours
    /// and `id`'s (another tool's is left alone).
    async fn purge(&self, id: &CredentialId, name: &str) -> Result<(), StorageError> {
        let mut round = 0;
        loop {
            let found = self
                .client
                .get_deleted_secret(name, None)
                .await
                .and_then(|r| r.into_model());
            match found {
                Ok(d) => {
                    if !holds(id, &tag_map(d.tags)) {
                        return Ok(());
                    }
                    if let Some(level) = d.attributes.as_ref().and_then(unpurgeable) {
                        return Err(self.purge_protected(id, name, &level));
                    }
                }
                Err(e) => {
                    let e = AzError::from(e);
                    match e.kind {
                        Kind::NotFound | Kind::BeingDeleted => {
                            self.wait(&mut round, Operation::Delete, id, e).await?;
                            continue;
                        }
                        _ => {
                            return Err(e.into_storage(self.ctx(
                                Operation::Delete,
                                Some(id),
                                Access::Read,
                                READ_METADATA,
                            )));
                        }
                    }
                }
            }
            match self
                .client
                .purge_deleted_secret(name, None)
                .await
                .map_err(AzError::from)
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == Kind::NotFound => return Ok(()),
                Err(e) if e.kind == Kind::BeingDeleted => self.wait(&mut round, Operation::Delete, id, e).await?,
                Err(e) => return Err(e.into_storage(self.ctx(Operation::Delete, Some(id), Access::Purge, PURGE))),
            }
        }
    }

    /// Purge mode, on a delete that found no live secret: a deleted secret of ours left
    /// unpurged (an earlier purge failed) is purged now; one the vault's purge protection
    /// keeps is left (nothing more can be done until its retention ends).
    async fn purge_leftover(&self, id: &CredentialId, name: &str) -> Result<(), StorageError> {
        match self
            .client
            .get_deleted_secret(name, None)
            .await
            .and_then(|r| r.into_model())
        {
            Ok(d) => {
                let protected = d.attributes.as_ref().and_then(unpurgeable).is_some();
                if holds(id, &tag_map(d.tags)) && !protected {
                    self.purge(id, name).await?;
                }
                Ok(())
            }
            Err(e) => {
                let e = AzError::from(e);
                match e.kind {
                    Kind::NotFound | Kind::BeingDeleted => Ok(()),
                    _ => Err(e.into_storage(self.ctx(Operation::Delete, Some(id), Access::Read, READ_METADATA))),
                }
            }
        }
    }

    /// After a set met `ObjectIsDeletedButRecoverable`: recovers (soft mode, or a vault with
    /// purge protection) or purges (purge mode) the deleted secret if it is ours;
    /// `Conflict` if it is not. A recover of our delete exposes the tombstone, never the
    /// deleted record; `Ok(true)` when the recover brings back a record (a delete without
    /// a tombstone: by an earlier release, or by hand), which readers see until our set.
    pub(super) async fn revive(&self, id: &CredentialId, name: &str) -> Result<bool, StorageError> {
        let ctx = |access, action| self.ctx(Operation::Store, Some(id), access, action);
        let deleted = match self
            .client
            .get_deleted_secret(name, None)
            .await
            .and_then(|r| r.into_model())
        {
            Ok(d) => d,
            Err(e) => {
                let e = AzError::from(e);
                return match e.kind {
                    // Not visible yet, or gone meanwhile: look again.
                    Kind::NotFound | Kind::BeingDeleted => Ok(false),
                    _ => Err(e.into_storage(ctx(Access::Read, READ_METADATA))),
                };
            }
        };
        let protected = deleted.attributes.as_ref().and_then(unpurgeable).is_some();
        self.ensure_ours(id, name, &tag_map(deleted.tags))?;
        let recover = self.config.delete_mode == DeleteMode::Soft || protected;
        let exposes = recover && !is_tombstone(deleted.content_type.as_deref());
        let outcome = if recover {
            self.client
                .recover_deleted_secret(name, None)
                .await
                .map(drop)
                .map_err(|e| (AzError::from(e), Access::Write, RECOVER))
        } else {
            self.client
                .purge_deleted_secret(name, None)
                .await
                .map(drop)
                .map_err(|e| (AzError::from(e), Access::Purge, PURGE))
        };
        match outcome {
            Ok(()) => Ok(exposes),
            Err((e, _, _)) if matches!(e.kind, Kind::NotFound | Kind::BeingDeleted | Kind::BeingRecovered) => {
                Ok(exposes)
            }
            Err((e, access, action)) => Err(e.into_storage(ctx(access, action))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_protection_is_a_recovery_level_without_purgeable() {
        let at = |level: &str| SecretAttributes {
            recovery_level: Some(level.parse().unwrap()),
            ..Default::default()
        };
        for level in [
            "Recoverable",
            "CustomizedRecoverable",
            "Recoverable+ProtectedSubscription",
        ] {
            assert_eq!(unpurgeable(&at(level)).as_deref(), Some(level));
        }
        for level in ["Purgeable", "Recoverable+Purgeable", "CustomizedRecoverable+Purgeable"] {
            assert_eq!(unpurgeable(&at(level)), None, "{level}");
        }
        assert_eq!(
            unpurgeable(&SecretAttributes::default()),
            None,
            "unknown: try the purge"
        );
    }
}

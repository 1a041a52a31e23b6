//! Invitations this device made: stored with their secret, expiry and remaining uses, and
//! spent one use at a time (see [`crate::invite`] for what they are for).

use sqlx::Row as _;

use super::{DbError, Index};

/// One invitation as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredInvite {
    /// The random handle the link carries (not secret by itself).
    pub id: Vec<u8>,
    /// The HMAC key the joiner proves it holds.
    pub secret: Vec<u8>,
    /// The folder IDs offered.
    pub folders: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    pub uses_left: i64,
}

impl Index {
    /// Stores a new invitation.
    pub async fn insert_invite(&self, invite: &StoredInvite) -> Result<(), DbError> {
        let folders = serde_json::to_string(&invite.folders)
            .map_err(|_| DbError::Corrupt { what: "folder list", name: "invite".into() })?;
        sqlx::query(
            "INSERT INTO invites (id, secret, folders, created_at, expires_at, uses_left)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&invite.id)
        .bind(&invite.secret)
        .bind(folders)
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .bind(invite.uses_left)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The invitation with handle `id`, if there is one.
    pub async fn invite(&self, id: &[u8]) -> Result<Option<StoredInvite>, DbError> {
        let row = sqlx::query(
            "SELECT id, secret, folders, created_at, expires_at, uses_left FROM invites WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let folders: String = row.try_get(2)?;
        let folders = serde_json::from_str(&folders)
            .map_err(|_| DbError::Corrupt { what: "folder list", name: "invite".into() })?;
        Ok(Some(StoredInvite {
            id: row.try_get(0)?,
            secret: row.try_get(1)?,
            folders,
            created_at: row.try_get(3)?,
            expires_at: row.try_get(4)?,
            uses_left: row.try_get(5)?,
        }))
    }

    /// Spends one use of invitation `id` if it has one left and has not expired at `now`: one
    /// statement, so two joiners racing for the last use cannot both get it. False: nothing
    /// was spent.
    pub async fn spend_invite(&self, id: &[u8], now: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE invites SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0 AND expires_at > ?",
        )
        .bind(id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

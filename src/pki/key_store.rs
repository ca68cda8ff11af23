//! Where wrapped data keys live (`data_keys`): stored once per private key, loaded to
//! decrypt it, destroyed to crypto-shred it.

use sqlx::PgPool;
use uuid::Uuid;

use super::envelope::WrappedDataKey;

/// Stores a wrapped data key.
pub async fn store_data_key(pool: &PgPool, key: &WrappedDataKey) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO data_keys (id, kek_id, wrapped_key) VALUES ($1, $2, $3)")
        .bind(key.id)
        .bind(&key.kek_id)
        .bind(&key.wrapped)
        .execute(pool)
        .await?;
    Ok(())
}

/// The ids of the key-encryption keys that live data keys are wrapped under.
pub async fn kek_ids_in_use(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT kek_id FROM data_keys WHERE wrapped_key IS NOT NULL ORDER BY kek_id",
    )
    .fetch_all(pool)
    .await
}

/// Loads a wrapped data key; `None` if it never existed or was destroyed.
pub async fn load_data_key(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<WrappedDataKey>> {
    let row: Option<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT kek_id, wrapped_key FROM data_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(kek_id, wrapped)| {
        wrapped.map(|wrapped| WrappedDataKey {
            id,
            kek_id,
            wrapped,
        })
    }))
}

/// Destroys a data key for good (its private key becomes undecryptable).
pub async fn destroy_data_key(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = now() \
         WHERE id = $1 AND destroyed_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

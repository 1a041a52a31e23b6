//! Conversions between index rows and [`FileInfo`]s.

use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use super::DbError;
use crate::bep::{BlockHash, BlockInfo, FileInfo, FileType, Vector};
use crate::identity::ShortId;

/// The columns [`file_from_row`] reads, in order; a macro so that queries stay `&'static str`
/// (sqlx refuses SQL built at run time).
macro_rules! file_columns {
    () => {
        "name, type, size, permissions, no_permissions, modified_s, modified_ns, modified_by, \
         deleted, invalid, version, sequence, block_size, symlink_target, blocklist_hash"
    };
    // The same columns of table alias `$t`.
    ($t:literal) => {
        concat!(
            $t,
            ".name, ",
            $t,
            ".type, ",
            $t,
            ".size, ",
            $t,
            ".permissions, ",
            $t,
            ".no_permissions, ",
            $t,
            ".modified_s, ",
            $t,
            ".modified_ns, ",
            $t,
            ".modified_by, ",
            $t,
            ".deleted, ",
            $t,
            ".invalid, ",
            $t,
            ".version, ",
            $t,
            ".sequence, ",
            $t,
            ".block_size, ",
            $t,
            ".symlink_target, ",
            $t,
            ".blocklist_hash"
        )
    };
}
pub(super) use file_columns;

/// The encoded block list of the file row of table (or alias) `$files`, as one more column:
/// an entry and its blocks read by one statement come from one snapshot, where a second query
/// could find the block list already dropped by a write in between.
macro_rules! blocks_of {
    ($files:literal) => {
        concat!("(SELECT bl.blocks FROM blocklists bl WHERE bl.blocklist_hash = ", $files, ".blocklist_hash)")
    };
}
pub(super) use blocks_of;

/// Bytes one block takes in an encoded block list: size (u32 BE) then SHA-256.
const ENCODED_BLOCK_LEN: usize = 4 + 32;

/// Reads a file row (see [`file_columns`]); the blocks are not loaded, the block list's hash is
/// returned beside the file.
pub(super) fn file_from_row(row: &SqliteRow) -> Result<(FileInfo, Option<BlockHash>), DbError> {
    file_from_row_at(row, 0)
}

/// [`file_from_row`] for a row whose file columns start at column `at`.
pub(super) fn file_from_row_at(row: &SqliteRow, at: usize) -> Result<(FileInfo, Option<BlockHash>), DbError> {
    let name: String = row.try_get(at)?;
    let corrupt = |what| DbError::Corrupt { what, name: name.clone() };
    let file_type = FileType::from_wire(row.try_get(at + 1)?).ok_or_else(|| corrupt("file type"))?;
    let version =
        Vector::from_bytes(&row.try_get::<Vec<u8>, _>(at + 10)?).ok_or_else(|| corrupt("version vector"))?;
    let blocklist_hash = match row.try_get::<Option<Vec<u8>>, _>(at + 14)? {
        None => None,
        Some(h) => Some(BlockHash::try_from(h.as_slice()).map_err(|_| corrupt("block list hash"))?),
    };
    let info = FileInfo {
        file_type,
        size: u64::try_from(row.try_get::<i64, _>(at + 2)?).map_err(|_| corrupt("size"))?,
        permissions: u32::try_from(row.try_get::<i64, _>(at + 3)?).map_err(|_| corrupt("permissions"))?,
        no_permissions: row.try_get(at + 4)?,
        modified_s: row.try_get(at + 5)?,
        modified_ns: row.try_get(at + 6)?,
        // Stored as the i64 with the same bits.
        modified_by: ShortId(row.try_get::<i64, _>(at + 7)? as u64),
        deleted: row.try_get(at + 8)?,
        invalid: row.try_get(at + 9)?,
        version,
        sequence: row.try_get(at + 11)?,
        block_size: u32::try_from(row.try_get::<i64, _>(at + 12)?).map_err(|_| corrupt("block size"))?,
        symlink_target: row.try_get(at + 13)?,
        blocks: Vec::new(),
        name,
    };
    Ok((info, blocklist_hash))
}

/// One entry of [`super::Index::local_children`]'s JSON array, in its column order.
type JsonFile = (String, i32, i64, i64, i64, i64, i32, i64, i64, i64, String, i64, i64, String);

/// Reads the JSON array of file entries that `local_children` builds in SQL (blocks not
/// loaded).
pub(super) fn files_from_json(json: &str, parent: &str) -> Result<Vec<FileInfo>, DbError> {
    let rows: Vec<JsonFile> = serde_json::from_str(json)
        .map_err(|_| DbError::Corrupt { what: "directory listing", name: parent.to_owned() })?;
    rows.into_iter()
        .map(
            |(
                name,
                ty,
                size,
                perms,
                no_perms,
                mod_s,
                mod_ns,
                by,
                deleted,
                invalid,
                version,
                seq,
                bs,
                target,
            )| {
                let corrupt = |what| DbError::Corrupt { what, name: name.clone() };
                let version = data_encoding::HEXUPPER
                    .decode(version.as_bytes())
                    .ok()
                    .and_then(|v| Vector::from_bytes(&v))
                    .ok_or_else(|| corrupt("version vector"))?;
                Ok(FileInfo {
                    file_type: FileType::from_wire(ty).ok_or_else(|| corrupt("file type"))?,
                    size: u64::try_from(size).map_err(|_| corrupt("size"))?,
                    permissions: u32::try_from(perms).map_err(|_| corrupt("permissions"))?,
                    no_permissions: no_perms != 0,
                    modified_s: mod_s,
                    modified_ns: mod_ns,
                    modified_by: ShortId(by as u64),
                    deleted: deleted != 0,
                    invalid: invalid != 0,
                    version,
                    sequence: seq,
                    block_size: u32::try_from(bs).map_err(|_| corrupt("block size"))?,
                    symlink_target: target,
                    blocks: Vec::new(),
                    name,
                })
            },
        )
        .collect()
}

/// Encodes a block list for the `blocklists` table.
pub(super) fn encode_blocks(blocks: &[BlockInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * ENCODED_BLOCK_LEN);
    for b in blocks {
        out.extend_from_slice(&b.size.to_be_bytes());
        out.extend_from_slice(&b.hash);
    }
    out
}

/// Decodes [`encode_blocks`]; offsets are the running sum of sizes.
/// A row of [`file_columns!`] with, at column `at`, its [`blocks_of!`] column: the entry with
/// its blocks.
pub(super) fn file_with_blocks(row: &SqliteRow, at: usize) -> Result<FileInfo, DbError> {
    file_with_blocks_at(row, 0, at)
}

/// [`file_with_blocks`] for a row whose file columns start at column `first`.
pub(super) fn file_with_blocks_at(row: &SqliteRow, first: usize, at: usize) -> Result<FileInfo, DbError> {
    let (mut file, blocklist) = file_from_row_at(row, first)?;
    if blocklist.is_some() {
        let bytes: Option<Vec<u8>> = row.try_get(at)?;
        file.blocks = bytes
            .as_deref()
            .and_then(decode_blocks)
            .ok_or_else(|| DbError::Corrupt { what: "block list", name: file.name.clone() })?;
    }
    Ok(file)
}

pub(super) fn decode_blocks(bytes: &[u8]) -> Option<Vec<BlockInfo>> {
    if !bytes.len().is_multiple_of(ENCODED_BLOCK_LEN) {
        return None;
    }
    let mut offset = 0u64;
    bytes
        .chunks_exact(ENCODED_BLOCK_LEN)
        .map(|chunk| {
            let (size, hash) = chunk.split_at(4);
            let size = u32::from_be_bytes(size.try_into().ok()?);
            let block = BlockInfo { offset, size, hash: hash.try_into().ok()? };
            offset += u64::from(size);
            Some(block)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_round_trip_with_offsets() {
        let blocks = vec![
            BlockInfo { offset: 0, size: 131072, hash: [1; 32] },
            BlockInfo { offset: 131072, size: 131072, hash: [2; 32] },
            BlockInfo { offset: 262144, size: 17, hash: [3; 32] },
        ];
        assert_eq!(decode_blocks(&encode_blocks(&blocks)), Some(blocks));
        assert_eq!(decode_blocks(&[0; 35]), None);
    }
}

//! Gzip framing of lake objects.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::LakeError;

/// Gzip at the default level: raw JSON shrinks ~10×, and the default is the
/// usual speed/size balance for data written once and read rarely.
pub fn gzip(key: &str, bytes: &[u8]) -> Result<Vec<u8>, LakeError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|source| LakeError::Gzip {
            key: key.to_owned(),
            source,
        })
}

/// Inverse of [`gzip`]; a corrupt object is an error naming its key.
pub fn gunzip(key: &str, bytes: &[u8]) -> Result<Vec<u8>, LakeError> {
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() * 4);
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|source| LakeError::Gzip {
            key: key.to_owned(),
            source,
        })?;
    Ok(out)
}

//! Node identity (an ed25519 libp2p keypair kept in the data directory) and the optional
//! pre-shared cluster key.

use super::NetError;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;
use libp2p::PeerId;
use std::path::Path;

/// File name of the node's keypair inside the data directory (libp2p protobuf encoding).
pub const KEY_FILE: &str = "node.key";

/// Loads the keypair from `dir/node.key`, or creates and stores a fresh ed25519 keypair there
/// (mode 0600 on Unix) on first start.
pub fn load_or_create_keypair(dir: &Path) -> Result<Keypair, NetError> {
    match load_keypair(dir)? {
        Some(k) => Ok(k),
        None => create_keypair(dir),
    }
}

/// Loads the keypair from `dir/node.key`; `None` if there is no such file. An empty or
/// unreadable key file is a [`NetError::DataDir`] naming it (the node's identity is in it:
/// rasp never replaces it on its own).
pub fn load_keypair(dir: &Path) -> Result<Option<Keypair>, NetError> {
    let path = dir.join(KEY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(NetError::Io(
                format!("reading node key {}", path.display()),
                e,
            ))
        }
    };
    let damaged = |what: String| NetError::DataDir {
        what: format!(
            "node key {} is {what}; it holds this node's identity (its peer id). Restore \
                 it from a backup, or delete it to start this data directory as a new node",
            path.display()
        ),
        source: None,
    };
    if bytes.is_empty() {
        return Err(damaged("empty (0 bytes)".into()));
    }
    // libp2p decodes any key type and names a disabled one ("cargo feature `rsa` is not
    // enabled") for bytes that are not a key at all: rasp writes ed25519 keys only, so say so.
    match Keypair::from_protobuf_encoding(&bytes) {
        Ok(k) if k.key_type() == libp2p::identity::KeyType::Ed25519 => Ok(Some(k)),
        Ok(k) => Err(damaged(format!(
            "a {:?} key, not the ed25519 key rasp writes",
            k.key_type()
        ))),
        Err(_) => Err(damaged(format!(
            "damaged ({} bytes that are not a libp2p protobuf-encoded ed25519 keypair)",
            bytes.len()
        ))),
    }
}

/// Creates a fresh ed25519 keypair and stores it in `dir/node.key` (mode 0600 on Unix,
/// written to a temporary file, synced, then renamed into place).
pub fn create_keypair(dir: &Path) -> Result<Keypair, NetError> {
    let path = dir.join(KEY_FILE);
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .expect("ed25519 keys always encode");
    write_private(&path, &bytes)
        .map_err(|e| NetError::Io(format!("writing node key {}", path.display()), e))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads a pre-shared cluster key file in the standard libp2p format:
///
/// ```text
/// /key/swarm/psk/1.0.0/
/// /base16/
/// <64 hex digits: 256 bits>
/// ```
pub fn load_psk(path: &Path) -> Result<PreSharedKey, NetError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        NetError::Config(format!(
            "cannot read cluster key file {}: {e}",
            path.display()
        ))
    })?;
    // libp2p's parser slices the text by bytes and panics inside a multi-byte character: the
    // format is ASCII, so anything else is refused first.
    if !text.is_ascii() {
        return Err(NetError::Config(format!(
            "cluster key file {} is not a /key/swarm/psk/1.0.0/ base16 key: it holds \
             characters that are not ASCII",
            path.display()
        )));
    }
    text.trim().parse::<PreSharedKey>().map_err(|e| {
        NetError::Config(format!(
            "cluster key file {} is not a /key/swarm/psk/1.0.0/ base16 key: {e}",
            path.display()
        ))
    })
}

/// Renders a fresh random cluster key in the standard file format (for `rasp gen-psk`-style
/// tooling and tests).
pub fn generate_psk_file_text() -> String {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    PreSharedKey::new(key).to_string()
}

/// The 64-bit node id rasp derives from a libp2p peer id: FNV-1a over the peer id's bytes.
/// Stable across processes and platforms; ids of distinct peers collide with probability
/// about n²/2⁶⁵, and the address book refuses a second peer with an id already taken.
pub fn node_id_bits(peer: &PeerId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in peer.to_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypair_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("rasp-key-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = load_or_create_keypair(&dir).unwrap();
        let b = load_or_create_keypair(&dir).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        for bad in [&b""[..], &b"garbage"[..]] {
            std::fs::write(dir.join(KEY_FILE), bad).unwrap();
            let e = load_or_create_keypair(&dir).unwrap_err().to_string();
            assert!(e.contains(KEY_FILE) && !e.contains("rsa"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn psk_file_round_trips() {
        let path = std::env::temp_dir().join(format!("rasp-psk-test-{}", std::process::id()));
        std::fs::write(&path, generate_psk_file_text()).unwrap();
        load_psk(&path).unwrap();
        std::fs::write(&path, "/key/swarm/psk/1.0.0/\n/base16/\nnothex\n").unwrap();
        assert!(load_psk(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    /// Found by the `cluster_key_file` fuzz target (case 36920): a key whose hex digits hold
    /// a two-byte character (`c2 9f`) made libp2p's parser slice inside it and panic ("end
    /// byte index 20 is not a char boundary"): `rasp node --psk-file` crashed.
    #[test]
    fn a_key_file_with_a_non_ascii_character_is_an_error_not_a_panic() {
        let path = std::env::temp_dir().join(format!("rasp-psk-utf8-{}", std::process::id()));
        let mut text = b"/key/swarm/psk/1.0.0/\n/base16/\n6d77e16be98f3278b53".to_vec();
        text.extend([0xc2, 0x9f]);
        text.extend(b"b339a7970d34c3c6f1cac19358265f4cf1cedce7f75\n");
        std::fs::write(&path, &text).unwrap();
        let r = std::panic::catch_unwind(|| load_psk(&path));
        std::fs::remove_file(&path).ok();
        let e = r.expect("no panic").unwrap_err().to_string();
        assert!(e.contains("cluster key file") && e.contains("ASCII"), "{e}");
    }
}

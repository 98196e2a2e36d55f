//! Building the libp2p swarm: TCP + (optional pnet) + noise + yamux, with identify, ping and
//! raw streams.

use super::{NetConfig, NetError};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, noise, ping, tcp, yamux, PeerId, StreamProtocol, Swarm, Transport};

/// The libp2p protocol of rasp's message streams.
pub const MSG_PROTOCOL: StreamProtocol = StreamProtocol::new("/rasp/msg/1");

/// The identify protocol version rasp nodes announce; peers announcing another are refused.
pub const IDENTIFY_PROTOCOL: &str = "/rasp/id/1";

/// The libp2p behaviours of a rasp node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Learns peers' listen addresses (the address book) and tells them ours.
    pub identify: identify::Behaviour,
    /// Liveness: a connection whose pings time out is closed (peer down).
    pub ping: ping::Behaviour,
    /// Raw streams carrying length-delimited message frames.
    pub stream: libp2p_stream::Behaviour,
}

/// The authenticated, multiplexed transport: TCP (nodelay), then the pnet handshake when a
/// cluster key is set, then noise (XX, ed25519 identities), then yamux.
pub fn transport(
    key: &Keypair,
    psk: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    let noise = noise::Config::new(key).map_err(|e| NetError::transport(e.to_string(), e))?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let t = match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
            .boxed(),
    };
    Ok(t)
}

/// Builds a swarm for `key` with rasp's transport and behaviours (not yet listening).
pub(crate) fn build_swarm(
    key: Keypair,
    psk: Option<PreSharedKey>,
    cfg: &NetConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    let t = transport(&key, psk)?;
    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
            .with_agent_version(format!("rasp/{}", env!("CARGO_PKG_VERSION"))),
    );
    let ping = ping::Behaviour::new(
        ping::Config::new()
            .with_interval(cfg.ping_interval)
            .with_timeout(cfg.ping_timeout),
    );
    let idle = cfg.idle_connection_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| t)
        .map_err(|e| NetError::transport(e.to_string(), e))?
        .with_behaviour(|_| Behaviour {
            identify,
            ping,
            stream: libp2p_stream::Behaviour::new(),
        })
        .map_err(|e| NetError::transport(e.to_string(), e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    Ok(swarm)
}

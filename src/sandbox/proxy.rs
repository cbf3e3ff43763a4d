//! A TCP fault proxy: stands between the controller and a regional service so drills can
//! add latency, reset connections (all of them, or some at random: a lossy link) or
//! swallow them (blackhole). The kernel here has no netem, so faults are made in userspace.
//!
//! The proxy also records the local address of every upstream connection it holds open
//! (`Peers`), so a service in the same process can tell the controller's requests (which
//! come through a proxy) from everyone else's (clients, the witness): the flapping fault
//! counts each side's requests separately.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ProxyMode {
    /// Forward bytes unchanged.
    #[default]
    Pass,
    /// Forward, after holding each new connection for `ms`.
    Latency { ms: u64 },
    /// Accept and immediately reset new connections; cut existing ones.
    Reset,
    /// A lossy link: reset each new connection with probability `percent` / 100, pass the
    /// rest. Existing connections are left alone.
    ResetSome { percent: u8 },
    /// Accept and never answer: the peer waits until its own timeout. Existing
    /// connections are cut.
    Blackhole,
}

/// The local addresses of the upstream connections proxies hold open: whoever receives a
/// connection from one of them is talking to a proxy, not to a client.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<Mutex<HashSet<SocketAddr>>>);

impl Peers {
    /// Whether a connection from `peer` comes through one of the proxies.
    pub fn proxied(&self, peer: &SocketAddr) -> bool {
        self.lock().contains(peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes an upstream connection's address from `Peers` when the connection ends.
struct Held(Peers, Option<SocketAddr>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(a) = self.1 {
            self.0.lock().remove(&a);
        }
    }
}

/// A running proxy and the switch that changes its mode.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub name: String,
    pub listen_port: u16,
    pub upstream_port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    /// Bumped on each fault that must cut live connections.
    generation: watch::Sender<u64>,
    peers: Peers,
}

impl Proxy {
    /// Listens on 127.0.0.1:`listen_port` (0 picks one) and forwards to
    /// 127.0.0.1:`upstream_port`.
    pub async fn start(name: &str, listen_port: u16, upstream_port: u16) -> anyhow::Result<Proxy> {
        Proxy::start_with(name, listen_port, upstream_port, Peers::default()).await
    }

    /// The same, recording its upstream connections in `peers`.
    pub async fn start_with(
        name: &str,
        listen_port: u16,
        upstream_port: u16,
        peers: Peers,
    ) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", listen_port)).await?;
        let listen_port = listener.local_addr()?.port();
        let (generation, _) = watch::channel(0u64);
        let proxy = Proxy {
            name: name.to_string(),
            listen_port,
            upstream_port,
            mode: Arc::new(Mutex::new(ProxyMode::Pass)),
            generation,
            peers,
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move { p.handle(client).await });
            }
        });
        Ok(proxy)
    }

    pub fn mode(&self) -> ProxyMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the mode. Reset and blackhole also cut the connections already open, as a
    /// real network failure would.
    pub fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        if matches!(mode, ProxyMode::Reset | ProxyMode::Blackhole) {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    async fn handle(&self, mut client: TcpStream) {
        match self.mode() {
            ProxyMode::Reset => {
                // A zero linger turns close into a RST.
                let _ = client.set_zero_linger();
                return;
            }
            ProxyMode::Blackhole => {
                let mut cut = self.generation.subscribe();
                // Hold the connection open, silent, until the mode changes again.
                let _ = cut.changed().await;
                return;
            }
            ProxyMode::ResetSome { percent } if fastrand::u8(0..100) < percent => {
                let _ = client.set_zero_linger();
                return;
            }
            ProxyMode::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            ProxyMode::ResetSome { .. } | ProxyMode::Pass => {}
        }
        let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", self.upstream_port)).await else {
            let _ = client.set_zero_linger();
            return;
        };
        let local = upstream.local_addr().ok();
        if let Some(a) = local {
            self.peers.lock().insert(a);
        }
        let _held = Held(self.peers.clone(), local);
        let mut cut = self.generation.subscribe();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            _ = cut.changed() => {
                let _ = client.set_zero_linger();
            }
        }
        let _ = client.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    async fn roundtrip(port: u16) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn the_proxy_passes_delays_resets_and_swallows_on_command() {
        let upstream = echo_server().await;
        let proxy = Proxy::start("echo", 0, upstream).await.expect("proxy");
        assert_eq!(roundtrip(proxy.listen_port).await.expect("pass"), b"ping");

        proxy.set_mode(ProxyMode::Latency { ms: 100 });
        let t = std::time::Instant::now();
        assert_eq!(
            roundtrip(proxy.listen_port).await.expect("latency"),
            b"ping"
        );
        assert!(t.elapsed() >= Duration::from_millis(100));

        proxy.set_mode(ProxyMode::Reset);
        assert!(roundtrip(proxy.listen_port).await.is_err(), "reset");

        proxy.set_mode(ProxyMode::Blackhole);
        let err = roundtrip(proxy.listen_port).await.expect_err("blackhole");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        proxy.set_mode(ProxyMode::Pass);
        assert_eq!(roundtrip(proxy.listen_port).await.expect("healed"), b"ping");
    }

    #[tokio::test]
    async fn a_lossy_link_resets_about_the_share_of_connections_it_is_told() {
        let upstream = echo_server().await;
        let proxy = Proxy::start("echo", 0, upstream).await.expect("proxy");
        proxy.set_mode(ProxyMode::ResetSome { percent: 30 });
        let mut reset = 0;
        for _ in 0..300 {
            if roundtrip(proxy.listen_port).await.is_err() {
                reset += 1;
            }
        }
        // 300 draws at p = 0.3: mean 90, standard deviation 8; 50..130 is five of them.
        assert!((50..=130).contains(&reset), "{reset} of 300 reset");
        proxy.set_mode(ProxyMode::ResetSome { percent: 0 });
        for _ in 0..20 {
            assert_eq!(roundtrip(proxy.listen_port).await.expect("0 %"), b"ping");
        }
    }

    #[tokio::test]
    async fn the_upstream_side_knows_which_connections_come_through_a_proxy() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream = l.local_addr().expect("addr").port();
        let peers = Peers::default();
        let proxy = Proxy::start_with("svc", 0, upstream, peers.clone())
            .await
            .expect("proxy");
        let _via = TcpStream::connect(("127.0.0.1", proxy.listen_port))
            .await
            .expect("connect via the proxy");
        let (_s, from_proxy) = l.accept().await.expect("accept");
        let _direct = TcpStream::connect(("127.0.0.1", upstream))
            .await
            .expect("connect directly");
        let (_d, direct) = l.accept().await.expect("accept");
        // The proxy records its side before it copies a byte; give its task a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(peers.proxied(&from_proxy));
        assert!(!peers.proxied(&direct));
    }

    #[tokio::test]
    async fn a_fault_cuts_connections_that_were_already_open() {
        let upstream = echo_server().await;
        let proxy = Proxy::start("echo", 0, upstream).await.expect("proxy");
        let mut s = TcpStream::connect(("127.0.0.1", proxy.listen_port))
            .await
            .expect("connect");
        s.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.expect("echo");
        proxy.set_mode(ProxyMode::Blackhole);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = s.write_all(b"ping").await;
        let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "the open connection was cut: {r:?}"
        );
    }
}

//! A TCP gate in front of each etcd member's peer (raft) port, so one member can be cut
//! off from the others on loopback. Every member connects from 127.0.0.1, so addresses
//! cannot tell them apart (iptables `-s` rules fail for the same reason); the gate asks
//! the kernel instead which process owns the connecting socket (`/proc/net/tcp`, then
//! the members' `/proc/<pid>/fd`), and drops what crosses the partition.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which members exist (their pids) and which are isolated; shared by every gate.
#[derive(Debug)]
pub struct PeerNet {
    pids: Mutex<Vec<Option<u32>>>,
    isolated: Mutex<BTreeSet<usize>>,
    /// Bumped on every partition change so open connections re-check their side.
    generation: watch::Sender<u64>,
}

impl PeerNet {
    pub fn new(members: usize) -> Arc<PeerNet> {
        Arc::new(PeerNet {
            pids: Mutex::new(vec![None; members]),
            isolated: Mutex::new(BTreeSet::new()),
            generation: watch::channel(0).0,
        })
    }

    pub fn set_pid(&self, member: usize, pid: Option<u32>) {
        lock(&self.pids)[member] = pid;
    }

    /// Cuts `member` off from every other member (its clients still reach it).
    pub fn isolate(&self, member: usize) {
        lock(&self.isolated).insert(member);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn heal(&self, member: usize) {
        lock(&self.isolated).remove(&member);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether traffic from `from` to `to` crosses the partition. An unknown source
    /// crosses whenever the destination is isolated (better a dropped connection than a
    /// leak through the partition).
    fn blocked(&self, from: Option<usize>, to: usize) -> bool {
        let isolated = lock(&self.isolated);
        match from {
            Some(f) => isolated.contains(&f) != isolated.contains(&to),
            None => isolated.contains(&to),
        }
    }

    fn member_of(&self, inode: u64) -> Option<usize> {
        let pids = lock(&self.pids).clone();
        let target = format!("socket:[{inode}]");
        pids.iter().enumerate().find_map(|(i, pid)| {
            let dir = std::fs::read_dir(format!("/proc/{}/fd", (*pid)?)).ok()?;
            dir.flatten()
                .any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
                })
                .then_some(i)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The inode of the IPv4 socket whose local port is `local` and remote port `remote`.
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && port(f[1]) == Some(local) && port(f[2]) == Some(remote))
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// Listens on 127.0.0.1:0 and forwards to member `to`'s peer port on 127.0.0.1.
/// Returns the port it listens on.
pub async fn start(net: Arc<PeerNet>, to: usize, upstream: u16) -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((conn, peer)) = listener.accept().await {
            let from = socket_inode(peer.port(), port).and_then(|inode| net.member_of(inode));
            tokio::spawn(forward(net.clone(), conn, from, to, upstream));
        }
    });
    Ok(port)
}

async fn forward(
    net: Arc<PeerNet>,
    mut conn: TcpStream,
    from: Option<usize>,
    to: usize,
    upstream: u16,
) {
    let mut changes = net.generation.subscribe();
    // Across the partition: hold the connection silent until the partition changes, as
    // a lost route would, then drop it so the member redials.
    while net.blocked(from, to) {
        if changes.changed().await.is_err() {
            return;
        }
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        let _ = conn.set_zero_linger();
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut conn, &mut up) => break,
            changed = changes.changed() => {
                if changed.is_err() || net.blocked(from, to) {
                    let _ = conn.set_zero_linger();
                    let _ = up.set_zero_linger();
                    return;
                }
            }
        }
    }
    let _ = conn.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_traffic_across_the_partition_is_blocked() {
        let net = PeerNet::new(3);
        assert!(!net.blocked(Some(0), 1));
        net.isolate(2);
        assert!(net.blocked(Some(0), 2));
        assert!(net.blocked(Some(2), 1));
        assert!(!net.blocked(Some(0), 1));
        assert!(
            net.blocked(None, 2),
            "an unknown source never reaches the isolated member"
        );
        assert!(!net.blocked(None, 1));
        net.heal(2);
        assert!(!net.blocked(Some(2), 1));
    }

    #[tokio::test]
    async fn the_gate_finds_which_process_owns_a_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_server_side, peer) = listener.accept().expect("accept");
        let inode = socket_inode(peer.port(), port).expect("the socket is in /proc/net/tcp");
        let net = PeerNet::new(2);
        net.set_pid(1, Some(std::process::id()));
        assert_eq!(
            net.member_of(inode),
            Some(1),
            "this process owns the client socket"
        );
        drop(client);
    }
}

//! A network partition between a server under test and a peer: a loopback TCP proxy that can be
//! cut and healed. Stopping the peer itself (e.g. [`crate::Synapse::stop`]) also stops everyone
//! else talking to it; a cut proxy stops only the traffic that goes through it, so that a tester
//! can go on sending messages to the homeserver while the bots cannot reach it.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running proxy; dropping it closes it and every connection through it.
#[derive(Debug)]
pub struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// The accept loop; it owns the connections' tasks, so aborting it ends them all.
    _tasks: JoinSet<()>,
}

impl Partition {
    /// Proxies a new loopback port to `target` (`host:port`).
    pub async fn to(target: &str) -> anyhow::Result<Partition> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, watching) = watch::channel(false);
        let target = target.to_owned();
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener, target, watching));
        Ok(Partition {
            addr,
            cut,
            _tasks: tasks,
        })
    }

    /// `http://127.0.0.1:PORT`, the proxy's side.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection and refuses new ones (each is closed as soon as it is
    /// accepted, as a stopped peer's port resets them).
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

async fn accept(listener: TcpListener, target: String, cut: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                if *cut.borrow() {
                    drop(inbound);
                    continue;
                }
                connections.spawn(forward(inbound, target.clone(), cut.clone()));
            }
            // Reap finished connections so that the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Copies both ways until either side closes or the partition is cut.
async fn forward(mut inbound: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

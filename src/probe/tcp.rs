//! `tcp` probes: a TCP connection is accepted (and closed at once, with a reset).

use async_trait::async_trait;

use super::{Facts, Failure, Probe};

pub struct TcpProbe {
    host: String,
    port: u16,
}

impl TcpProbe {
    pub fn new(host: &str, port: u16) -> TcpProbe {
        TcpProbe {
            host: host.to_string(),
            port,
        }
    }
}

#[async_trait]
impl Probe for TcpProbe {
    fn endpoint(&self) -> String {
        format!("tcp {}:{}", self.host, self.port)
    }

    async fn check(&self) -> Result<Facts, Failure> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::new(format!("could not connect: {e}")))?;
        // Closed with a reset, as load balancers close their health checks: a normal
        // close leaves each round's port in TIME_WAIT for a minute, and a fleet probing
        // one server hundreds of times a second would run out of ports.
        let _ = stream.set_zero_linger();
        Ok(Facts::detail("connected"))
    }
}

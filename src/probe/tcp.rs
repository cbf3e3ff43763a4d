//! `tcp` probes: a TCP connection is accepted.

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
        tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::new(format!("could not connect: {e}")))?;
        Ok(Facts::detail("connected"))
    }
}

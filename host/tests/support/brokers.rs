//! The machine's RabbitMQ, and a TCP proxy a test cuts to make a broker
//! unreachable without stopping the one every test shares.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use switchyard::queue::RetryPolicy;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::relay::skip;

/// `SWITCHYARD_TEST_AMQP` points the suites at another RabbitMQ.
pub fn amqp_url() -> String {
    std::env::var("SWITCHYARD_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub async fn amqp_connect(url: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    Connection::connect(url, properties).await
}

/// The queue name for test `case`, with what an earlier run left under it
/// deleted; `None` (after `skip`) when RabbitMQ cannot be reached.
pub async fn fresh_amqp_name(case: &str, policy: &RetryPolicy) -> Option<String> {
    let connection = match amqp_connect(&amqp_url()).await {
        Ok(connection) => connection,
        Err(e) => {
            skip(&format!("RabbitMQ at {} is unreachable: {e}", switchyard::config::redact_url(&amqp_url())));
            return None;
        }
    };
    let name = format!("switchyard.test.{case}");
    let channel = connection.create_channel().await.expect("a channel");
    let mut queues = vec![name.clone(), format!("{name}.dead")];
    queues.extend((1..policy.max_deliveries).map(|n| format!("{name}.retry.{}", policy.delay(n).as_millis())));
    for queue in &queues {
        channel.queue_delete(queue, QueueDeleteOptions::default()).await.expect("delete a test queue");
    }
    channel.exchange_delete(&format!("{name}.dlx"), ExchangeDeleteOptions::default()).await.expect("delete");
    let _ = connection.close(200, "done").await;
    Some(name)
}

/// Forwards a loopback port to `target` until cut.
pub struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy { addr, target, accept: Mutex::new(None), pipes: Default::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, pipes) = (self.target, self.pipes.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                pipes.lock().unwrap().push(pipe);
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    /// Drops every connection and refuses new ones, as a dead broker does.
    pub fn cut(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Listens on the same port again.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind the proxy's port");
        self.serve(listener);
    }

    /// `amqp://…` through this proxy.
    pub fn amqp_url(&self) -> String {
        amqp_url().replacen(&self.target.to_string(), &self.addr.to_string(), 1)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// moto_server (scripts/python-tool.sh moto installs it) on a free loopback port: an
/// SQS of its own for one test, stopped when dropped.
pub struct Moto {
    pub endpoint: String,
    child: std::process::Child,
}

impl Moto {
    /// `None` (after `skip`) when moto is not installed.
    pub async fn start() -> Option<Moto> {
        let binary = std::env::var_os("SWITCHYARD_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| super::repo_root().join("tools/moto/venv/bin/moto_server"));
        if !binary.is_file() {
            skip(&format!("moto_server is not installed at {} (run scripts/python-tool.sh moto)", binary.display()));
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not listen on port {port} within 30 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The media TCP port (ICE-TCP) against connections that are not peers
//! (issue 19): at most `media.tcp_max_per_address` open connections from one
//! address, and a connection that has not passed ICE within
//! `media.tcp_ice_timeout_secs` is closed. A real ICE-TCP participant is
//! not affected: its media keeps flowing long past the timeout.
//!
//! Runs on loopback; needs no namespace of its own (no UDP media is used by
//! the connection checks), though scripts/test runs it inside one.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, TestClient, Transport};
use giaoban_tests::{token_of, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Four: the two ICE-TCP participants below hold two connections each.
const MAX_PER_ADDRESS: usize = 4;
const ICE_TIMEOUT: Duration = Duration::from_secs(2);

fn config() -> String {
    format!(
        "[media]\ntcp_max_per_address = {MAX_PER_ADDRESS}\ntcp_ice_timeout_secs = {}\n",
        ICE_TIMEOUT.as_secs()
    )
}

/// Waits up to `wait` for the server to close `s`: Some(after) when it
/// did (end of stream or reset), None when it is still open.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(wait.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // Anything the server sent (it sends nothing to a stranger).
            Ok(Ok(_)) => continue,
        }
    }
}

/// An RFC 4571 frame holding a STUN Binding request with a USERNAME no peer
/// has: what a scanner or a stale client sends.
fn stranger_check() -> Vec<u8> {
    let user = b"nobody:scan";
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
    attrs.extend_from_slice(user);
    attrs.resize(attrs.len().div_ceil(4) * 4, 0);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&attrs);
    let mut frame = (m.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&m);
    frame
}

#[tokio::test]
async fn the_media_tcp_port_caps_each_address_and_closes_connections_without_ice() -> Result<()> {
    let server = TestServer::start_with_config(&config()).await?;
    let addr = server.media_tcp;

    // MAX_PER_ADDRESS connections stay open; the ones beyond are closed at once.
    let mut kept = Vec::new();
    for _ in 0..MAX_PER_ADDRESS {
        kept.push(TcpStream::connect(addr).await.context("connect")?);
    }
    // The server counts a connection once it accepted it: give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..2 {
        let mut extra = TcpStream::connect(addr).await.context("connect")?;
        let closed = closed_within(&mut extra, Duration::from_secs(1)).await;
        println!(
            "connection {} from one address: closed after {closed:?}",
            MAX_PER_ADDRESS + 1 + i
        );
        ensure!(
            closed.is_some(),
            "connection {} from one address was kept",
            MAX_PER_ADDRESS + 1 + i
        );
    }

    // The kept ones carry nothing (two), or only checks that name no peer
    // (one): none passes ICE, all are closed after the timeout, not before.
    kept[0].write_all(&stranger_check()).await?;
    let started = Instant::now();
    for (i, s) in kept.iter_mut().enumerate() {
        let closed = closed_within(s, ICE_TIMEOUT * 3).await;
        let at = started.elapsed();
        println!(
            "connection {} without ICE: closed {at:?} after the checks began",
            i + 1
        );
        ensure!(
            closed.is_some(),
            "connection {} without ICE is still open after {at:?}",
            i + 1
        );
        ensure!(
            at >= ICE_TIMEOUT - Duration::from_millis(500),
            "connection {} closed before the ICE timeout ({at:?})",
            i + 1
        );
    }

    // Closed connections no longer count: the address may connect again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(addr).await?;
    ensure!(
        closed_within(&mut again, Duration::from_millis(500))
            .await
            .is_none(),
        "a new connection after the others closed was refused"
    );
    drop(again);

    // A participant on ICE-TCP passes ICE and keeps its connections (two:
    // publish and subscribe) well past the timeout, with media flowing.
    let meeting = server.create_meeting("Giao ban qua TCP").await?;
    let mut clients = Vec::new();
    for name in ["Xã Quảng Sơn", "Xã Đắk Ha"] {
        let url = server.invite(&meeting, name, "bridge").await?;
        clients.push(
            TestClient::join_media(
                &server.ws_url(),
                token_of(&url)?,
                JoinOptions {
                    transport: Transport::Tcp,
                    ..JoinOptions::default()
                },
                MediaOptions::default(),
            )
            .await?,
        );
    }
    let other = clients[1].participant_id().to_owned();
    let first = clients[0].received(&other, Kind::Video).packets;
    tokio::time::sleep(ICE_TIMEOUT * 3).await;
    let later = clients[0].received(&other, Kind::Video).packets;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = clients[0].received(&other, Kind::Video).packets;
    println!("ICE-TCP participant: video packets {first} -> {later} -> {last}");
    ensure!(
        later > first && last > later,
        "media over ICE-TCP stopped after the ICE timeout: {first} -> {later} -> {last}\n{}",
        clients[0].summary()
    );
    Ok(())
}

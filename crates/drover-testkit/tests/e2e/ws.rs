use bytes::Bytes;
use drover_testkit::{MemberConfig, TestMember};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

use crate::common::{DEADLINE, eventually, get};

async fn open(m: &TestMember) -> WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(m.addr()).await.unwrap();
    let (ws, res) = client_async(format!("ws://{}/ws", m.addr()), stream)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(res.headers()["x-member"], m.name());
    ws
}

async fn next(ws: &mut WebSocketStream<TcpStream>) -> Option<Result<Message, String>> {
    timeout(DEADLINE, ws.next())
        .await
        .expect("a message or the end in time")
        .map(|r| r.map_err(|e| e.to_string()))
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_exactly() {
    let m = TestMember::start(MemberConfig::new("w")).await.unwrap();
    let mut ws = open(&m).await;
    for msg in [
        Message::text("hello"),
        Message::binary(Bytes::from_static(&[0, 1, 2, 255])),
        Message::text(""),
        Message::binary(vec![42u8; 200_000]),
    ] {
        ws.send(msg.clone()).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Ok(msg)));
    }
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Ok(Message::Pong(Bytes::from_static(b"p"))))
    );
    ws.close(None).await.unwrap();
    loop {
        match next(&mut ws).await {
            Some(Ok(Message::Close(_))) => continue,
            None => break,
            other => panic!("unexpected after close: {other:?}"),
        }
    }
    assert_eq!(m.requests(), 1);
}

#[tokio::test]
async fn ws_without_an_upgrade_is_a_bad_request() {
    let m = TestMember::start(MemberConfig::new("w")).await.unwrap();
    let r = get(m.addr(), "/ws").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["sec-websocket-version"], "13");
    assert!(r.text().starts_with("w "));
}

#[tokio::test]
async fn kill_drops_websockets() {
    let m = TestMember::start(MemberConfig::new("w")).await.unwrap();
    let mut ws = open(&m).await;
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Ok(Message::text("x"))));
    timeout(DEADLINE, m.kill()).await.expect("kill returns");
    match next(&mut ws).await {
        None | Some(Err(_)) => {}
        Some(Ok(msg)) => panic!("a killed member sent {msg:?}"),
    }
}

#[tokio::test]
async fn stop_closes_websockets_with_a_close_frame() {
    let m = TestMember::start(MemberConfig::new("w")).await.unwrap();
    let mut ws = open(&m).await;
    eventually("the upgrade request arrives", || m.requests() == 1).await;
    timeout(DEADLINE, m.stop()).await.expect("stop returns");
    assert!(matches!(next(&mut ws).await, Some(Ok(Message::Close(_)))));
}

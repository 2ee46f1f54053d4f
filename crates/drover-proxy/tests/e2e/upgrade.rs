//! WebSocket (and any Upgrade) passes through.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn websocket_echo_through_drover() {
    let m = TestMember::start(MemberConfig::new("ws")).await.unwrap();
    let proxy = drover(&simple_config("round-robin", &[&m]));
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut ws, res) =
        tokio_tungstenite::client_async(format!("ws://{}/ws", proxy.addr()), stream)
            .await
            .expect("websocket handshake through drover");
    assert_eq!(res.status(), 101);
    for i in 0..20 {
        let text = format!("hello {i}");
        ws.send(Message::Text(text.clone().into())).await.unwrap();
        let echoed = ws.next().await.expect("an echo").unwrap();
        assert_eq!(echoed, Message::Text(text.into()));
    }
    let blob: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    ws.send(Message::Binary(blob.clone().into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(blob.into())
    );
    ws.close(None).await.unwrap();
    // The proxy keeps serving plain requests.
    assert_eq!(get(proxy.addr(), "/").await.status, 200);
}

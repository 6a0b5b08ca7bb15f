//! The buffer on its own: who is counted as waiting.

use std::any::TypeId;
use std::time::Duration;

use super::*;

fn channel(capacity: usize) -> Channel {
    Channel::new(
        "q".into(),
        "w".into(),
        (TypeId::of::<u32>(), "u32"),
        capacity,
        1,
        Hooks::default(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_send_cancelled_or_timed_out_while_it_waits_is_no_longer_counted_as_waiting() {
    let channel = channel(1);
    channel.send(Arc::new(1_u32), None).await.unwrap();
    for _ in 0..3 {
        let waited = tokio::time::timeout(
            Duration::from_millis(10),
            channel.send(Arc::new(2_u32), None),
        )
        .await;
        assert!(waited.is_err(), "the queue is full");
    }
    assert_eq!(channel.lock().sends_waiting, 0);
    let deadline = Some(Instant::now() + Duration::from_millis(10));
    let refused = channel.send(Arc::new(3_u32), deadline).await;
    assert!(matches!(refused, Err((_, Reject::Full))));
    assert_eq!(channel.lock().sends_waiting, 0);
    // A slot takes the job: a waiting send goes in, and is no longer counted.
    let waiting = channel.send(Arc::new(4_u32), None);
    let mut waiting = std::pin::pin!(waiting);
    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    assert_eq!(channel.lock().sends_waiting, 1);
    let (job, alone) = channel.next().await.unwrap();
    assert!(alone && job.id == 1);
    assert_eq!(waiting.await.unwrap(), 2);
    assert_eq!(channel.lock().sends_waiting, 0);
}

//! Producing test records with librdkafka.

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Sends `payloads` to `topic`, record i to partition i % `partitions`, and waits for every
/// acknowledgement.
pub fn produce(brokers: &str, topic: &str, partitions: i32, payloads: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let sends: Vec<_> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                producer
                    .send_result(
                        FutureRecord::<(), _>::to(topic)
                            .payload(p.as_str())
                            .partition(i as i32 % partitions),
                    )
                    .map_err(|(e, _)| e)
            })
            .collect();
        for s in sends {
            s.unwrap().await.unwrap().unwrap();
        }
    });
}

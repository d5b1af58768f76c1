//! The OpenAI client's listing of our uploads, against the emulator over real HTTP.

use std::collections::HashSet;

use ai_batch::provider::{ClientConfig, OpenAiClient, Provider};

use crate::spec::emulator;

/// Uploads one small file named `name`, as another client of the same account would.
async fn upload(url: &str, name: &str) {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::text("{}").file_name(name.to_string()),
        );
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/files"))
        .bearer_auth("test-key")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// More uploads than a page holds (1,000): every one of ours since the time asked is found,
/// each with its batch's id; older ones and files not named as ours are not.
#[tokio::test]
async fn our_uploads_are_listed_across_pages_back_to_the_time_asked() {
    let (url, emulator, _task) = emulator().await;
    upload(&url, "ai-batch-old.jsonl").await;
    emulator.advance_clock(chrono::Duration::hours(1));
    let since = chrono::Utc::now() + chrono::Duration::minutes(30);
    upload(&url, "someone-elses.jsonl").await;
    for i in 0..1_050 {
        upload(&url, &format!("ai-batch-b{i}.jsonl")).await;
    }

    let client = OpenAiClient::new(ClientConfig::new(&url, "test-key")).unwrap();
    let uploads = client.uploads_since(since).await.unwrap();
    let labels: HashSet<String> = uploads.iter().map(|u| u.label.clone()).collect();
    let expected: HashSet<String> = (0..1_050).map(|i| format!("b{i}")).collect();
    assert_eq!(uploads.len(), 1_050, "each once");
    assert_eq!(labels, expected);
    assert!(uploads.iter().all(|u| u.created_at >= since));

    let all = client
        .uploads_since(since - chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(all.len(), 1_051, "the old one too, when asked");
}

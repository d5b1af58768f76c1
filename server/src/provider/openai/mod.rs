//! The HTTP client for OpenAI's Batch API, behind the same `Provider` trait as Anthropic's.
//!
//! A create is two steps: the requests go up as a JSONL file (`POST /v1/files`,
//! `purpose=batch`), then a batch is made of it (`POST /v1/batches`) with our batch's id in
//! its `metadata`. An upload may be retried (a file costs nothing); a create only when
//! nothing can have been made. A create whose answer was lost is found again by that label
//! (`labelled`), never sent again blindly. Our files are deleted once a batch is ingested.

pub mod translate;
pub mod wire;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;

use self::translate::{message_batch, read_output_line};
use self::wire::{
    Batch, BatchList, CHAT_COMPLETIONS, DeletedFile, FileList, FileObject, InputLine,
};
use super::transport::{Auth, ClientConfig, Retry, Transport};
use super::{
    BatchBody, BatchPage, BatchRequest, BatchResult, DeletedBatch, ErrorResponse, ListParams,
    MessageBatch, Provider, ProviderError, ResultItem, ResultLine, ResultStream, Upload,
};

pub struct OpenAiClient {
    http: Transport,
}

impl OpenAiClient {
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            http: Transport::new(config, Auth::Bearer, "openai")?,
        })
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<T, ProviderError> {
        let url = self.http.url(path);
        self.http
            .json(
                operation,
                || {
                    let request = self.http.request(method.clone(), &url);
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                },
                retry,
            )
            .await
    }

    async fn batch(&self, id: &str) -> Result<Batch, ProviderError> {
        self.call(
            "retrieve",
            Method::GET,
            &format!("/v1/batches/{id}"),
            None,
            Retry::Transient,
        )
        .await
    }

    async fn upload(&self, label: &str, jsonl: Vec<u8>) -> Result<FileObject, ProviderError> {
        let url = self.http.url("/v1/files");
        let jsonl = bytes::Bytes::from(jsonl);
        self.http
            .json(
                "upload",
                || {
                    let file = reqwest::multipart::Part::stream(jsonl.clone())
                        .file_name(upload_name(label))
                        .mime_str("application/jsonl")
                        .expect("a valid mime type");
                    let form = reqwest::multipart::Form::new()
                        .text("purpose", "batch")
                        .part("file", file);
                    self.http.request(Method::POST, &url).multipart(form)
                },
                // A second copy of a file is harmless: its name makes it one of our uploads,
                // deleted once its batch has settled (`uploads_since`).
                Retry::Transient,
            )
            .await
    }

    async fn delete_file(&self, id: &str) -> Result<DeletedFile, ProviderError> {
        self.call(
            "delete_file",
            Method::DELETE,
            &format!("/v1/files/{id}"),
            None,
            Retry::Transient,
        )
        .await
    }

    async fn file_lines(&self, id: &str) -> Result<ResultStream, ProviderError> {
        let url = self.http.url(&format!("/v1/files/{id}/content"));
        self.http.lines("results", &url, read_output_line).await
    }

    /// A batch OpenAI refused as a whole (`failed`: its input did not validate) has no output:
    /// every request of its input file is an errored result, billed nothing.
    async fn refused_requests(&self, batch: &Batch) -> Result<ResultStream, ProviderError> {
        let reason = batch
            .errors
            .as_ref()
            .and_then(|e| e.data.first())
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| "OpenAI refused the batch's input file".into());
        let url = self
            .http
            .url(&format!("/v1/files/{}/content", batch.input_file_id));
        self.http
            .lines("results", &url, move |raw, _| match raw {
                super::results::RawLine::Whole(bytes) => {
                    let line: InputLine = serde_json::from_slice(&bytes).ok()?;
                    Some(Ok(ResultItem::Line(ResultLine {
                        custom_id: line.custom_id,
                        result: BatchResult::Errored {
                            error: ErrorResponse::new("invalid_request_error", reason.clone()),
                        },
                    })))
                }
                _ => None,
            })
            .await
    }
}

const UPLOAD_PREFIX: &str = "ai-batch-";
const UPLOAD_SUFFIX: &str = ".jsonl";

/// An input file's name: our batch's id in it, so a file left by a fault is known as ours.
fn upload_name(label: &str) -> String {
    format!("{UPLOAD_PREFIX}{label}{UPLOAD_SUFFIX}")
}

/// The label an input file was uploaded for, if its name is one of ours.
fn upload_label(name: &str) -> Option<&str> {
    name.strip_prefix(UPLOAD_PREFIX)?
        .strip_suffix(UPLOAD_SUFFIX)
}

/// Files a page of the listing asks for (OpenAI allows up to 10,000).
const FILES_PAGE: usize = 1000;

/// The batch's requests as OpenAI's JSONL, each translated to a Chat Completions body.
pub fn jsonl(body: &BatchBody) -> Result<Vec<u8>, ProviderError> {
    let mut out = Vec::with_capacity(body.len() + body.custom_ids().len() * 64);
    for raw in body.requests() {
        let request: BatchRequest = serde_json::from_slice(raw)
            .map_err(|e| ProviderError::InvalidRequest(format!("a request is not JSON: {e}")))?;
        let chat = translate::chat_body(&request.params_value()).map_err(|e| {
            ProviderError::InvalidRequest(format!("request {}: {e}", request.custom_id))
        })?;
        let line = InputLine {
            custom_id: request.custom_id,
            method: "POST".into(),
            url: CHAT_COMPLETIONS.into(),
            body: chat,
        };
        serde_json::to_writer(&mut out, &line).expect("a line serializes");
        out.push(b'\n');
    }
    if body.custom_ids().len() > wire::MAX_REQUESTS || out.len() > wire::MAX_FILE_BYTES {
        return Err(ProviderError::InvalidRequest(format!(
            "the input file would hold {} requests in {} bytes, past OpenAI's {} requests or {} bytes",
            body.custom_ids().len(),
            out.len(),
            wire::MAX_REQUESTS,
            wire::MAX_FILE_BYTES
        )));
    }
    Ok(out)
}

#[async_trait]
impl Provider for OpenAiClient {
    async fn create_batch(
        &self,
        label: &str,
        body: BatchBody,
    ) -> Result<MessageBatch, ProviderError> {
        let file = self.upload(label, jsonl(&body)?).await?;
        let create = serde_json::json!({
            "input_file_id": file.id,
            "endpoint": CHAT_COMPLETIONS,
            "completion_window": "24h",
            "metadata": BTreeMap::from([(wire::LABEL_KEY, label)]),
        });
        let created: Result<Batch, _> = self
            .call(
                "create",
                Method::POST,
                "/v1/batches",
                Some(&create),
                Retry::OnlyIfNothingCreated,
            )
            .await;
        match created {
            Ok(batch) => Ok(message_batch(&batch)),
            Err(e) => {
                if e.proves_nothing_created()
                    && let Err(cleanup) = self.delete_file(&file.id).await
                {
                    tracing::warn!(file = %file.id, error = %cleanup, "could not delete the input file of a refused batch");
                }
                Err(e)
            }
        }
    }

    async fn retrieve_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        Ok(message_batch(&self.batch(batch_id).await?))
    }

    /// Pages of the batch files, newest first, until one older than `since`.
    async fn uploads_since(&self, since: DateTime<Utc>) -> Result<Vec<Upload>, ProviderError> {
        let mut uploads = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/files?purpose=batch&order=desc&limit={FILES_PAGE}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let page: FileList = self
                .call("list_files", Method::GET, &path, None, Retry::Transient)
                .await?;
            for file in &page.data {
                let created_at = DateTime::from_timestamp(file.created_at, 0).unwrap_or_default();
                if created_at < since {
                    return Ok(uploads);
                }
                if let Some(label) = upload_label(&file.filename) {
                    uploads.push(Upload {
                        id: file.id.clone(),
                        label: label.to_string(),
                        created_at,
                    });
                }
            }
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => return Ok(uploads),
            }
        }
    }

    async fn delete_upload(&self, id: &str) -> Result<(), ProviderError> {
        match self.delete_file(id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_batches(&self, params: ListParams) -> Result<BatchPage, ProviderError> {
        let mut query = vec![format!("limit={}", params.limit.unwrap_or(20))];
        if let Some(after) = &params.after_id {
            query.push(format!("after={after}"));
        }
        let list: BatchList = self
            .call(
                "list",
                Method::GET,
                &format!("/v1/batches?{}", query.join("&")),
                None,
                Retry::Transient,
            )
            .await?;
        Ok(BatchPage {
            data: list.data.iter().map(message_batch).collect(),
            has_more: list.has_more,
            first_id: list.first_id,
            last_id: list.last_id,
        })
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<MessageBatch, ProviderError> {
        let batch: Batch = self
            .call(
                "cancel",
                Method::POST,
                &format!("/v1/batches/{batch_id}/cancel"),
                None,
                Retry::Transient,
            )
            .await?;
        Ok(message_batch(&batch))
    }

    /// OpenAI keeps batches; what we delete are its files (input, output, errors).
    async fn delete_batch(&self, batch_id: &str) -> Result<DeletedBatch, ProviderError> {
        let batch = self.batch(batch_id).await?;
        let files = [
            Some(&batch.input_file_id),
            batch.output_file_id.as_ref(),
            batch.error_file_id.as_ref(),
        ];
        for file in files.into_iter().flatten() {
            self.delete_upload(file).await?;
        }
        Ok(DeletedBatch {
            id: batch.id,
            kind: "batch_files_deleted".into(),
        })
    }

    /// The output file, then the error file. An expired batch has both too: OpenAI bills
    /// the requests it completed before the window closed, so they are read like any other.
    async fn batch_results(&self, remote: &MessageBatch) -> Result<ResultStream, ProviderError> {
        let batch = self.batch(&remote.id).await?;
        if !batch.status.is_final() {
            return Err(ProviderError::Api {
                status: 400,
                kind: "invalid_request_error".into(),
                message: format!(
                    "batch {} has not ended; its results are not ready",
                    batch.id
                ),
                retry_after: None,
            });
        }
        let mut streams = Vec::new();
        for file in [&batch.output_file_id, &batch.error_file_id]
            .into_iter()
            .flatten()
        {
            streams.push(self.file_lines(file).await?);
        }
        if streams.is_empty() && batch.status == wire::BatchStatus::Failed {
            streams.push(self.refused_requests(&batch).await?);
        }
        // Each file's stream ends at its own broken download; a break ends the whole read.
        let mut failed = false;
        Ok(futures::stream::iter(streams)
            .flatten()
            .take_while(move |item| {
                let keep = !failed;
                failed |= item.is_err();
                futures::future::ready(keep)
            })
            .boxed())
    }

    /// Our files at OpenAI (input, output, errors) are no longer needed.
    async fn ingested(&self, batch_id: &str) -> Result<(), ProviderError> {
        self.delete_batch(batch_id).await.map(|_| ())
    }

    fn keeps_labels(&self) -> bool {
        true
    }
}

//! Requests from the API: pause, resume, update, rotation, test events and
//! manual retries. Each change is stored before the actor adopts it.

use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::ActorRef;

use crate::delivery::{SignedRequest, VerifyError};
use crate::error::EngineError;
use crate::model::{
    EventId, EventRecord, EventStatus, PreviousSecret, SigningSecret, Subscription,
    SubscriptionSpec, SubscriptionStatus,
};
use crate::router::RouterMsg;
use crate::store::QueueChange;

use super::{Reply, SubscriptionMsg, SubscriptionState, TestResult};

impl SubscriptionState {
    /// Stores `candidate`, and only then makes it the actor's state, updates
    /// the router and replies once the change is on disk. When the store
    /// rejects the write, the actor keeps its previous state and the caller
    /// gets the error. Returns true when the change was stored.
    pub(super) fn save_and_reply(
        &mut self,
        candidate: Subscription,
        reply: Reply<Subscription>,
    ) -> bool {
        if let Err(error) = self.ctx.store.put_subscription(&candidate) {
            let _ = reply.send(Err(error.into()));
            return false;
        }
        if candidate.status != self.sub.status {
            self.ctx
                .status_changed(Some(self.sub.status), Some(candidate.status));
        }
        self.sub = candidate;
        let _ = self
            .router
            .cast(RouterMsg::Upsert(Box::new(self.sub.clone())));
        let store = self.ctx.store.clone();
        let sub = self.sub.clone();
        tokio::spawn(async move {
            let result = store.flush().await.map(|_| sub).map_err(EngineError::from);
            let _ = reply.send(result);
        });
        true
    }

    pub(super) fn pause(&mut self, reply: Reply<Subscription>) {
        match self.sub.status {
            SubscriptionStatus::Disabled => {
                let _ = reply.send(Err(EngineError::Conflict(
                    "the subscription is Disabled; resume it to re-verify the endpoint".into(),
                )));
            }
            SubscriptionStatus::Paused => {
                let _ = reply.send(Ok(self.sub.clone()));
            }
            SubscriptionStatus::Active => {
                let candidate = self.with_status(SubscriptionStatus::Paused);
                if self.save_and_reply(candidate, reply) {
                    self.arrived.clear(&self.ctx.arrived_bytes);
                    tracing::info!(subscription_id = %self.sub.id, "subscription paused");
                }
            }
        }
    }

    pub(super) fn resume(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        reply: Reply<Subscription>,
    ) {
        match self.sub.status {
            SubscriptionStatus::Active => {
                let _ = reply.send(Ok(self.sub.clone()));
            }
            SubscriptionStatus::Paused => {
                let candidate = self.with_status(SubscriptionStatus::Active);
                if self.save_and_reply(candidate, reply) {
                    tracing::info!(subscription_id = %self.sub.id, "subscription resumed");
                }
            }
            SubscriptionStatus::Disabled => {
                let client = self.ctx.client.clone();
                let url = self.sub.url.clone();
                let secrets = self.sub.signing_secrets(Utc::now());
                let myself = myself.clone();
                self.verifying += 1;
                tokio::spawn(async move {
                    let result = client.verify_endpoint(&url, &secrets).await;
                    let _ = myself.cast(SubscriptionMsg::ResumeVerified(result, reply));
                });
            }
        }
    }

    pub(super) fn resume_verified(
        &mut self,
        result: Result<(), VerifyError>,
        reply: Reply<Subscription>,
    ) {
        self.verifying = self.verifying.saturating_sub(1);
        self.last_activity = Instant::now();
        if let Err(error) = result {
            let _ = reply.send(Err(error.into()));
            return;
        }
        let mut candidate = self.sub.clone();
        let reactivated = candidate.status == SubscriptionStatus::Disabled;
        if reactivated {
            candidate = self.with_status(SubscriptionStatus::Active);
            candidate.consecutive_failures = 0;
        }
        if self.save_and_reply(candidate, reply) && reactivated {
            tracing::info!(subscription_id = %self.sub.id, "disabled subscription re-verified and resumed");
        }
    }

    /// Returns a copy of the subscription with `status` and no status reason.
    pub(super) fn with_status(&self, status: SubscriptionStatus) -> Subscription {
        let mut candidate = self.sub.clone();
        candidate.status = status;
        candidate.status_reason = None;
        candidate.updated_at = Utc::now();
        candidate
    }

    pub(super) fn update(&mut self, spec: SubscriptionSpec, reply: Reply<Subscription>) {
        let mut candidate = self.sub.clone();
        candidate.url = spec.url;
        candidate.event_types = spec.event_types;
        candidate.description = spec.description;
        candidate.retry_policy = spec.retry_policy;
        candidate.updated_at = Utc::now();
        if self.save_and_reply(candidate, reply) {
            tracing::info!(subscription_id = %self.sub.id, "subscription updated");
        }
    }

    pub(super) fn rotate_secret(&mut self, grace: Duration, reply: Reply<Subscription>) {
        let now = Utc::now();
        let mut candidate = self.sub.clone();
        let old = std::mem::replace(&mut candidate.secret, SigningSecret::generate());
        candidate.previous_secret = Some(PreviousSecret {
            secret: old,
            expires_at: now + chrono::Duration::from_std(grace).unwrap_or_default(),
        });
        candidate.updated_at = now;
        if self.save_and_reply(candidate, reply) {
            tracing::info!(subscription_id = %self.sub.id, grace_seconds = grace.as_secs(), "secret rotated");
        }
    }

    pub(super) fn test(&self, reply: Reply<TestResult>) {
        let client = self.ctx.client.clone();
        let url = self.sub.url.to_url();
        let secrets = self.sub.signing_secrets(Utc::now());
        let sub_id = self.sub.id;
        tokio::spawn(async move {
            let event_id = uuid::Uuid::new_v4();
            let body = serde_json::json!({
                "eventId": event_id,
                "eventType": "webhook.test",
                "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "resourceType": "webhook",
                "resourceId": sub_id.0,
                "data": {"message": "Test event from argus-webhooks"},
            })
            .to_string();
            let msg_id = format!("test_{}", event_id.simple());
            let report = client
                .send(SignedRequest {
                    url: &url,
                    msg_id: &msg_id,
                    event_type: "webhook.test",
                    body: body.as_bytes(),
                    secrets: &secrets,
                })
                .await;
            let _ = reply.send(Ok(TestResult {
                success: report.success(),
                response_code: report.status,
                response_time_ms: report.duration.as_millis() as u64,
                error_message: report.error,
            }));
        });
    }

    pub(super) fn manual_retry(&mut self, event_id: EventId, reply: Reply<EventRecord>) {
        let mut event = match self.ctx.store.get_event(self.sub.id, event_id) {
            Ok(Some(event)) if event.subscription_id == self.sub.id => event,
            Ok(_) => {
                let _ = reply.send(Err(EngineError::NotFound("event")));
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        };
        if !event.status.is_finished() || self.in_flight.contains_key(&event_id) {
            let _ = reply.send(Err(EngineError::Conflict(format!(
                "the event is {}; only Failed or Delivered events can be retried",
                event.status.as_str()
            ))));
            return;
        }
        if self.sub.status == SubscriptionStatus::Disabled {
            let _ = reply.send(Err(EngineError::Conflict(
                "the subscription is Disabled; resume it before retrying its events".into(),
            )));
            return;
        }
        let previous = event.status;
        event.status = EventStatus::Pending;
        event.round_attempts = 0;
        event.status_reason = None;
        event.next_attempt_at = None;
        event.updated_at = Utc::now();
        match self
            .ctx
            .store
            .put_event(&event, previous, QueueChange::Enqueue)
        {
            Ok(true) => {}
            // Pruned since it was read.
            Ok(false) => {
                let _ = reply.send(Err(EngineError::NotFound("event")));
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        }
        tracing::info!(subscription_id = %self.sub.id, %event_id, "manual retry queued");
        self.ready.push_back(event_id);
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            let result = store
                .flush()
                .await
                .map(|_| event)
                .map_err(EngineError::from);
            let _ = reply.send(result);
        });
    }
}

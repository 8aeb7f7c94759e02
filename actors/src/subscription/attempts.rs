//! Starting attempts, recording their outcomes, retries and disabling.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;

use crate::delivery::{AttemptReport, SignedRequest};
use crate::model::{DeliveryAttempt, EventId, EventRecord, EventStatus, SubscriptionStatus};
use crate::retry::{next_delay, retry_delay, scale};
use crate::router::RouterMsg;
use crate::store::QueueChange;

use super::{InFlight, STORE_RETRY_DELAY, SubscriptionMsg, SubscriptionState};

impl SubscriptionState {
    pub(super) fn start_attempt(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        event_id: EventId,
        from_queue: bool,
    ) {
        // A kept record serves only a first attempt from the queue; a retry
        // reads the store, which has the attempts made since.
        let arrived = self.arrived.take(event_id, &self.ctx.arrived_bytes);
        let read = match arrived {
            Some(record) if from_queue => Ok(Some(record)),
            _ => self.ctx.store.get_event(self.sub.id, event_id),
        };
        let event = match read {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot read the event; retrying in 1 s");
                self.schedule_retry(myself, event_id, 0, STORE_RETRY_DELAY);
                return;
            }
        };
        // A queue entry starts only a first attempt; a ready entry may also resume a retry.
        let startable = match event.status {
            EventStatus::Pending => true,
            EventStatus::Retrying => !from_queue,
            _ => false,
        };
        if !startable {
            return;
        }
        let attempt = event.attempts.len() as u32 + 1;
        let started_at = Utc::now();
        self.in_flight.insert(
            event_id,
            InFlight {
                attempt,
                started_at,
                record: Some(Box::new(event.clone())),
            },
        );
        self.ctx.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("argus_webhooks_deliveries_in_flight").increment(1.0);

        let ctx = self.ctx.clone();
        let url = self.endpoint_url();
        let secrets = self.sub.signing_secrets(Utc::now());
        let myself = myself.clone();
        tokio::spawn(async move {
            let msg_id = event.id.to_string();
            let report = ctx
                .client
                .send(SignedRequest {
                    url: &url,
                    msg_id: &msg_id,
                    event_type: event.event_type.as_str(),
                    body: event.payload.as_bytes(),
                    secrets: &secrets,
                })
                .await;
            let finished = SubscriptionMsg::AttemptFinished {
                event_id,
                attempt,
                started_at,
                report,
            };
            // The actor is gone when the subscription was deleted; its events were failed then.
            let _ = myself.cast(finished);
        });
    }

    /// Returns the subscription's URL parsed, parsing it only when it
    /// differs from the one parsed last.
    fn endpoint_url(&mut self) -> Arc<url::Url> {
        match &self.parsed_url {
            Some((text, parsed)) if *text == self.sub.url => parsed.clone(),
            _ => {
                let parsed = Arc::new(self.sub.url.to_url());
                self.parsed_url = Some((self.sub.url.clone(), parsed.clone()));
                parsed
            }
        }
    }

    pub(super) fn attempt_finished(
        &mut self,
        myself: &ActorRef<SubscriptionMsg>,
        event_id: EventId,
        attempt: u32,
        started_at: DateTime<Utc>,
        report: AttemptReport,
    ) {
        let cached = match self.in_flight.remove(&event_id) {
            Some(in_flight) => {
                self.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
                metrics::gauge!("argus_webhooks_deliveries_in_flight").decrement(1.0);
                in_flight.record
            }
            None => None,
        };
        record_attempt_metrics(&report);
        self.ctx.record_attempt(report.success());
        // A cached record is the actor's own; `disable` drops the cache
        // before anything else may change the event.
        let from_cache = cached.is_some();
        let stored = match cached {
            Some(record) => Ok(Some(*record)),
            None => self
                .ctx
                .store
                .get_event_without_payload(self.sub.id, event_id),
        };
        let mut event = match stored {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                // The attempt stays unrecorded; the event is still queued and is sent again.
                tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the attempt; the event will be sent again in 1 s");
                self.schedule_retry(myself, event_id, attempt, STORE_RETRY_DELAY);
                return;
            }
        };
        let previous = event.status;
        let now = Utc::now();
        event.attempts.push(DeliveryAttempt {
            attempt_number: attempt,
            timestamp: started_at,
            response_code: report.status,
            response_time_ms: report.duration.as_millis() as u64,
            success: report.success(),
            error_message: report.error.clone(),
            response_body: report.body.clone(),
        });
        event.round_attempts += 1;
        event.updated_at = now;
        event.next_attempt_at = None;

        let mut disable_reason = None;
        let mut retry_after = None;
        let change = if report.success() {
            event.status = EventStatus::Delivered;
            event.status_reason = None;
            self.note_event_outcome(true);
            QueueChange::Finish
        } else if report.status == Some(410) {
            event.status = EventStatus::Failed;
            event.status_reason = Some("the endpoint responded with 410 Gone".into());
            disable_reason = Some(("gone", "the endpoint responded with 410 Gone".to_string()));
            QueueChange::Finish
        } else if let Some(delay) = self.next_retry_delay(&event, &report) {
            let next_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            event.status = EventStatus::Retrying;
            event.next_attempt_at = Some(next_at);
            event.status_reason = report.error.clone();
            retry_after = Some(delay);
            QueueChange::Retry(next_at)
        } else {
            event.status = EventStatus::Failed;
            event.status_reason = Some(format!(
                "delivery failed after {} attempts: {}",
                event.round_attempts,
                report.error.as_deref().unwrap_or("no 2xx response")
            ));
            if self.note_event_outcome(false) {
                let threshold = self.ctx.settings.disable_after_failed_events;
                disable_reason = Some((
                    "consecutive_failures",
                    format!("{threshold} events in a row failed after all their attempts"),
                ));
            }
            QueueChange::Finish
        };
        let written = if from_cache {
            self.ctx.store.put_own_event(&event, previous, change)
        } else {
            // Only finished events are pruned, so this one is still stored.
            self.ctx
                .store
                .put_event(&event, previous, change)
                .map(|_| ())
        };
        if let Err(error) = written {
            tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the attempt; the event will be sent again in 1 s");
            self.schedule_retry(myself, event_id, attempt, STORE_RETRY_DELAY);
            return;
        }
        if let Some(delay) = retry_after {
            self.schedule_retry(myself, event_id, attempt + 1, delay);
            metrics::counter!("argus_webhooks_delivery_retries_scheduled_total").increment(1);
            tracing::info!(subscription_id = %self.sub.id, %event_id, attempt, delay_ms = delay.as_millis() as u64, error = report.error.as_deref().unwrap_or(""), "attempt failed; retry scheduled");
        }
        if event.status.is_finished() && !previous.is_finished() {
            metrics::counter!("argus_webhooks_deliveries_total", "event_type" => event.event_type.as_str(), "outcome" => if event.status == EventStatus::Delivered { "delivered" } else { "failed" }).increment(1);
            tracing::info!(subscription_id = %self.sub.id, %event_id, attempt, status = event.status.as_str(), response_code = report.status.unwrap_or(0), "delivery finished");
        }
        if let Some((label, reason)) = disable_reason {
            self.disable(label, reason);
        }
    }

    /// Records each attempt still in flight at shutdown as interrupted. The
    /// event keeps its queue entry or scheduled retry, so it is sent again
    /// with the same `webhook-id` after a restart. An interrupted attempt does
    /// not count against the retry policy, because the service, not the
    /// endpoint, cut it short.
    pub(super) fn record_interrupted(&mut self) {
        for (event_id, in_flight) in std::mem::take(&mut self.in_flight) {
            self.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("argus_webhooks_deliveries_in_flight").decrement(1.0);
            let mut event = match self
                .ctx
                .store
                .get_event_without_payload(self.sub.id, event_id)
            {
                Ok(Some(event)) if !event.status.is_finished() => event,
                Ok(_) => continue,
                Err(error) => {
                    tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the interrupted attempt");
                    continue;
                }
            };
            let now = Utc::now();
            let elapsed = (now - in_flight.started_at).num_milliseconds().max(0) as u64;
            event.attempts.push(DeliveryAttempt {
                attempt_number: in_flight.attempt,
                timestamp: in_flight.started_at,
                response_code: None,
                response_time_ms: elapsed,
                success: false,
                error_message: Some(
                    "interrupted: the service shut down before the endpoint responded; the event is sent again after restart".into(),
                ),
                response_body: None,
            });
            event.updated_at = now;
            let status = event.status;
            match self.ctx.store.put_event(&event, status, QueueChange::Keep) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!(subscription_id = %self.sub.id, %event_id, attempt = in_flight.attempt, "attempt interrupted by shutdown; it is sent again after restart")
                }
                Err(error) => {
                    tracing::error!(subscription_id = %self.sub.id, %event_id, %error, "cannot record the interrupted attempt")
                }
            }
        }
    }

    /// Returns the delay before the next attempt, or `None` when the round's
    /// attempts are used up or the subscription is disabled.
    pub(super) fn next_retry_delay(
        &self,
        event: &EventRecord,
        report: &AttemptReport,
    ) -> Option<Duration> {
        if self.sub.status == SubscriptionStatus::Disabled {
            return None;
        }
        let scheduled = retry_delay(&self.sub.retry_policy, event.round_attempts)?;
        Some(scale(
            next_delay(scheduled, report.retry_after),
            self.ctx.settings.time_scale,
        ))
    }

    /// Counts a finished event; returns true when the failure run reaches the
    /// disable threshold.
    pub(super) fn note_event_outcome(&mut self, delivered: bool) -> bool {
        let before = self.sub.consecutive_failures;
        self.sub.consecutive_failures = if delivered { 0 } else { before + 1 };
        if before != self.sub.consecutive_failures
            && let Err(error) = self.ctx.store.put_subscription(&self.sub)
        {
            tracing::error!(subscription_id = %self.sub.id, %error, "cannot store the failure count");
        }
        let threshold = self.ctx.settings.disable_after_failed_events;
        !delivered && threshold > 0 && self.sub.consecutive_failures >= threshold
    }

    pub(super) fn disable(&mut self, label: &'static str, reason: String) {
        if self.sub.status == SubscriptionStatus::Disabled {
            return;
        }
        let old = self.sub.status;
        self.sub.status = SubscriptionStatus::Disabled;
        self.sub.status_reason = Some(reason.clone());
        self.sub.updated_at = Utc::now();
        if let Err(error) = self.ctx.store.put_subscription(&self.sub) {
            tracing::error!(subscription_id = %self.sub.id, %error, "cannot store the disabled status");
        }
        self.ctx
            .status_changed(Some(old), Some(SubscriptionStatus::Disabled));
        let _ = self
            .router
            .cast(RouterMsg::Upsert(Box::new(self.sub.clone())));
        metrics::counter!("argus_webhooks_subscriptions_disabled_total", "reason" => label)
            .increment(1);
        tracing::warn!(subscription_id = %self.sub.id, reason = %reason, "subscription disabled");

        // The queued events are failed in the background, so records cached
        // by attempts in flight go stale; those attempts read the store.
        for in_flight in self.in_flight.values_mut() {
            in_flight.record = None;
        }
        self.arrived.clear(&self.ctx.arrived_bytes);
        self.window.clear();
        self.ready.clear();
        self.timers.clear();
        self.backlog_in_store = false;
        self.spawn_fail_unfinished(format!("the subscription was disabled: {reason}"));
    }

    /// Marks the subscription's queued and retrying events Failed, off the
    /// actor's thread. Events created from now on are left alone, since the
    /// subscription may be resumed before the scan ends.
    pub(super) fn spawn_fail_unfinished(&self, event_reason: String) {
        let store = self.ctx.store.clone();
        let id = self.sub.id;
        let before = EventId::new();
        tokio::task::spawn_blocking(move || {
            match store.fail_unfinished_before(id, &event_reason, Some(before)) {
                Ok(count) => {
                    tracing::info!(subscription_id = %id, count, "queued events failed because the subscription was disabled")
                }
                Err(error) => {
                    tracing::error!(subscription_id = %id, %error, "cannot fail the queued events of a disabled subscription")
                }
            }
        });
    }
}

fn record_attempt_metrics(report: &AttemptReport) {
    let result = report.class.label();
    metrics::counter!("argus_webhooks_delivery_attempts_total", "result" => result).increment(1);
    metrics::histogram!("argus_webhooks_delivery_attempt_duration_seconds", "result" => result)
        .record(report.duration.as_secs_f64());
}

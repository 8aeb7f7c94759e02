//! Subscription records and their index by account.

use crate::model::Subscription;

use super::keys::*;
use super::*;

impl Store {
    pub fn load_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let mut out = Vec::new();
        for entry in self.inner.db.scan_prefix([SUBSCRIPTION]) {
            let (_, value) = self.track(entry.map_err(StoreError::from))?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    pub fn get_subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        let value = self.track(
            self.inner
                .db
                .get(key1(SUBSCRIPTION, id.as_bytes()))
                .map_err(StoreError::from),
        )?;
        value.map(|v| decode(&v)).transpose()
    }

    /// Returns the subscriptions of one account, oldest id first.
    pub fn account_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<Subscription>> {
        let mut out = Vec::new();
        for entry in self
            .inner
            .db
            .scan_prefix(account_prefix(BY_ACCOUNT_SUBSCRIPTION, account))
        {
            let (key, _) = self.track(entry.map_err(StoreError::from))?;
            let id = SubscriptionId::from_slice(&key[key.len() - 16..])
                .ok_or_else(|| StoreError::Corrupt("subscription index key".into()))?;
            if let Some(sub) = self.get_subscription(id)? {
                out.push(sub);
            }
        }
        Ok(out)
    }

    pub fn put_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        batch.insert(
            key1(SUBSCRIPTION, subscription.id.as_bytes()),
            encode(subscription),
        );
        let mut index_key = account_prefix(BY_ACCOUNT_SUBSCRIPTION, &subscription.account_id);
        index_key.extend_from_slice(subscription.id.as_bytes());
        batch.insert(index_key, &[][..]);
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))
    }

    pub fn delete_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.check_fault()?;
        let mut batch = sled::Batch::default();
        batch.remove(key1(SUBSCRIPTION, subscription.id.as_bytes()));
        let mut index_key = account_prefix(BY_ACCOUNT_SUBSCRIPTION, &subscription.account_id);
        index_key.extend_from_slice(subscription.id.as_bytes());
        batch.remove(index_key);
        self.track(self.inner.db.apply_batch(batch).map_err(StoreError::from))
    }
}

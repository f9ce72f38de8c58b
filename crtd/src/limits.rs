//! Per-tenant limits on what runs at once (queries, live streams), so one
//! tenant's load cannot take the capacity everyone shares. The node's root
//! user is not limited; operator tokens share one set of slots. Refusals are counted per tenant for `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::tenants::Scope;

pub struct TenantSlots {
    limit: usize,
    used: Mutex<HashMap<String, usize>>,
    refused: Mutex<BTreeMap<String, u64>>,
}

/// One taken slot, given back when dropped.
pub struct Slot {
    slots: Arc<TenantSlots>,
    tenant: Option<String>,
}

impl TenantSlots {
    pub fn new(limit: usize) -> Arc<TenantSlots> {
        Arc::new(TenantSlots {
            limit,
            used: Mutex::new(HashMap::new()),
            refused: Mutex::new(BTreeMap::new()),
        })
    }

    /// A slot for `scope`, or `None` when its tenant already holds them all.
    pub fn take(self: &Arc<Self>, scope: &Scope) -> Option<Slot> {
        let tenant = scope.limited_as().map(str::to_string);
        if let Some(t) = &tenant {
            let mut used = self.used.lock().unwrap();
            let n = used.entry(t.clone()).or_default();
            if *n >= self.limit {
                drop(used);
                *self.refused.lock().unwrap().entry(t.clone()).or_default() += 1;
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            slots: Arc::clone(self),
            tenant,
        })
    }

    /// Requests refused so far, by tenant.
    pub fn refused(&self) -> Vec<(String, u64)> {
        self.refused
            .lock()
            .unwrap()
            .iter()
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(t) = &self.tenant {
            if let Some(n) = self.slots.used.lock().unwrap().get_mut(t) {
                *n -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_limit_is_refused_and_others_are_not() {
        let slots = TenantSlots::new(2);
        let a = Scope::Tenant("a".into());
        let b = Scope::Tenant("b".into());
        let first = slots.take(&a).unwrap();
        let _second = slots.take(&a).unwrap();
        assert!(slots.take(&a).is_none());
        assert!(slots.take(&b).is_some(), "another tenant still gets one");
        let roots: Vec<Slot> = (0..10).map(|_| slots.take(&Scope::Root).unwrap()).collect();
        assert_eq!(roots.len(), 10);
        let operators: Vec<Slot> = (0..2)
            .map(|_| slots.take(&Scope::Operator).unwrap())
            .collect();
        assert!(
            slots.take(&Scope::Operator).is_none(),
            "operators share a limit"
        );
        drop(operators);
        drop(first);
        assert!(slots.take(&a).is_some(), "a slot given back is free again");
        assert_eq!(
            slots.refused(),
            vec![("(operator)".to_string(), 1), ("a".to_string(), 1)]
        );
    }
}

//! Account state: balances and nonces, and the state transition of a block.
//!
//! Applying a block either succeeds as a whole and returns an [`Undo`]
//! record (each touched account's previous value), or fails and changes
//! nothing. Undoing restores exactly the state before the block. All
//! arithmetic is checked.

use std::collections::HashMap;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{address::Address, block::Block, tx::Transaction};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    pub balance: u64,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

/// The previous values of the accounts a block touched (`None`: the account
/// did not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Undo {
    pub prev: Vec<(Address, Option<Account>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("transaction {index}: nonce {got}, the account expects {expected}")]
    Nonce {
        index: usize,
        got: u64,
        expected: u64,
    },
    #[error("transaction {index}: needs {needed}, the account holds {balance}")]
    Balance {
        index: usize,
        needed: u64,
        balance: u64,
    },
    #[error("an amount overflows")]
    Overflow,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    accounts: HashMap<Address, Account>,
    /// Sum of all balances, kept as blocks apply and undo (summing every
    /// account per block would cost time growing with the account count).
    total: u128,
}

impl State {
    pub fn from_accounts(accounts: impl IntoIterator<Item = (Address, Account)>) -> Self {
        let accounts: HashMap<Address, Account> = accounts.into_iter().collect();
        let total = accounts.values().map(|a| u128::from(a.balance)).sum();
        Self { accounts, total }
    }

    pub fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).copied().unwrap_or_default()
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Sum of all balances.
    pub fn total(&self) -> u128 {
        self.total
    }

    /// Sets `a` to `acc` (`None`: removes it), keeping the total.
    fn put(&mut self, a: Address, acc: Option<Account>) {
        let old = match acc {
            Some(acc) => self.accounts.insert(a, acc),
            None => self.accounts.remove(&a),
        };
        self.total -= old.map_or(0, |o| u128::from(o.balance));
        self.total += acc.map_or(0, |n| u128::from(n.balance));
    }

    /// Whether `tx` could be applied now, alone (for the mempool).
    pub fn check(&self, tx: &Transaction) -> Result<(), StateError> {
        let from = self.account(&tx.from);
        if tx.nonce != from.nonce {
            return Err(StateError::Nonce {
                index: 0,
                got: tx.nonce,
                expected: from.nonce,
            });
        }
        let needed = tx.amount.checked_add(tx.fee).ok_or(StateError::Overflow)?;
        if from.balance < needed {
            return Err(StateError::Balance {
                index: 0,
                needed,
                balance: from.balance,
            });
        }
        Ok(())
    }

    /// The accounts of `tx`'s sender and recipient after it, reading them
    /// from `overlay` first: the one rule both [`State::apply`] and
    /// [`State::applicable`] follow. `index` names the transaction in errors.
    fn transfer(
        &self,
        overlay: &HashMap<Address, Account>,
        tx: &Transaction,
        index: usize,
    ) -> Result<(Account, Account), StateError> {
        let get = |a: &Address| overlay.get(a).copied().unwrap_or_else(|| self.account(a));
        let mut from = get(&tx.from);
        if tx.nonce != from.nonce {
            return Err(StateError::Nonce {
                index,
                got: tx.nonce,
                expected: from.nonce,
            });
        }
        let needed = tx.amount.checked_add(tx.fee).ok_or(StateError::Overflow)?;
        from.balance = from
            .balance
            .checked_sub(needed)
            .ok_or(StateError::Balance {
                index,
                needed,
                balance: from.balance,
            })?;
        from.nonce = from.nonce.checked_add(1).ok_or(StateError::Overflow)?;
        // The recipient as it is once the sender has paid.
        let mut to = if tx.to == tx.from { from } else { get(&tx.to) };
        to.balance = to
            .balance
            .checked_add(tx.amount)
            .ok_or(StateError::Overflow)?;
        Ok((from, to))
    }

    /// The longest prefix-respecting selection of `txs` that applies in
    /// order: a transaction that would fail (nonce, balance) is skipped.
    pub fn applicable(&self, txs: Vec<Transaction>) -> Vec<Transaction> {
        let mut overlay: HashMap<Address, Account> = HashMap::new();
        let mut out = Vec::with_capacity(txs.len());
        for tx in txs {
            let Ok((from, to)) = self.transfer(&overlay, &tx, 0) else {
                continue;
            };
            overlay.insert(tx.from, from);
            overlay.insert(tx.to, to);
            out.push(tx);
        }
        out
    }

    /// Applies `block` (its transactions, then `reward` plus fees to the
    /// miner). On error nothing changes.
    pub fn apply(&mut self, block: &Block, reward: u64) -> Result<Undo, StateError> {
        let mut touched: HashMap<Address, Account> = HashMap::new();
        let mut order: Vec<Address> = Vec::new();
        let get = |t: &HashMap<Address, Account>, s: &Self, a: &Address| {
            t.get(a).copied().unwrap_or_else(|| s.account(a))
        };
        let mut fees: u64 = 0;
        for (index, tx) in block.txs.iter().enumerate() {
            let (from, to) = self.transfer(&touched, tx, index)?;
            remember(&mut order, &touched, tx.from);
            touched.insert(tx.from, from);
            remember(&mut order, &touched, tx.to);
            touched.insert(tx.to, to);
            fees = fees.checked_add(tx.fee).ok_or(StateError::Overflow)?;
        }
        let miner = block.header.miner;
        let mut m = get(&touched, self, &miner);
        let pay = reward.checked_add(fees).ok_or(StateError::Overflow)?;
        m.balance = m.balance.checked_add(pay).ok_or(StateError::Overflow)?;
        remember(&mut order, &touched, miner);
        touched.insert(miner, m);
        // Checked total: the supply must stay representable.
        let total = self.total + u128::from(pay);
        if total > u128::from(u64::MAX) {
            return Err(StateError::Overflow);
        }
        let mut undo = Undo::default();
        for a in order {
            undo.prev.push((a, self.accounts.get(&a).copied()));
            if let Some(acc) = touched.get(&a) {
                self.put(a, Some(*acc));
            }
        }
        Ok(undo)
    }

    /// Reverts a block applied with [`State::apply`].
    pub fn undo(&mut self, undo: &Undo) {
        for (a, prev) in undo.prev.iter().rev() {
            self.put(*a, *prev);
        }
    }

    /// Accounts changed by an undo record, with their values now (`None`:
    /// removed): what a store must write after applying or undoing.
    pub fn current_of(&self, undo: &Undo) -> Vec<(Address, Option<Account>)> {
        undo.prev
            .iter()
            .map(|(a, _)| (*a, self.accounts.get(a).copied()))
            .collect()
    }
}

fn remember(order: &mut Vec<Address>, touched: &HashMap<Address, Account>, a: Address) {
    if !touched.contains_key(&a) {
        order.push(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        block::{BlockHash, Header},
        tx::address_of,
    };
    use ed25519_zebra::SigningKey;

    fn block(txs: Vec<Transaction>, miner: Address) -> Block {
        Block {
            header: Header {
                parent: BlockHash::default(),
                height: 1,
                timestamp: 0,
                tx_root: [0; 32],
                target: [0xff; 32],
                nonce: 0,
                miner,
            },
            txs,
        }
    }

    #[test]
    fn apply_then_undo_restores_exactly() {
        let k = SigningKey::from([1; 32]);
        let a = address_of(&k);
        let b = Address([2; 32]);
        let m = Address([3; 32]);
        let mut s = State::from_accounts([(
            a,
            Account {
                balance: 100,
                nonce: 0,
            },
        )]);
        let before = s.clone();
        let txs = vec![
            Transaction::sign(&k, &[0; 32], b, 10, 1, 0, vec![]),
            Transaction::sign(&k, &[0; 32], b, 20, 2, 1, vec![]),
        ];
        let undo = s.apply(&block(txs, m), 50).unwrap();
        assert_eq!(
            s.account(&a),
            Account {
                balance: 67,
                nonce: 2
            }
        );
        assert_eq!(s.account(&b).balance, 30);
        assert_eq!(s.account(&m).balance, 53);
        assert_eq!(s.total(), 150);
        s.undo(&undo);
        assert_eq!(s, before);
    }

    #[test]
    fn a_failing_block_changes_nothing() {
        let k = SigningKey::from([1; 32]);
        let a = address_of(&k);
        let mut s = State::from_accounts([(
            a,
            Account {
                balance: 100,
                nonce: 0,
            },
        )]);
        let before = s.clone();
        let txs = vec![
            Transaction::sign(&k, &[0; 32], Address([2; 32]), 10, 1, 0, vec![]),
            Transaction::sign(&k, &[0; 32], Address([2; 32]), 95, 1, 1, vec![]),
        ];
        let err = s.apply(&block(txs, Address([3; 32])), 50).unwrap_err();
        assert!(matches!(err, StateError::Balance { index: 1, .. }), "{err}");
        assert_eq!(s, before);
        let gap = vec![Transaction::sign(
            &k,
            &[0; 32],
            Address([2; 32]),
            1,
            1,
            5,
            vec![],
        )];
        assert!(matches!(
            s.apply(&block(gap, Address([3; 32])), 50),
            Err(StateError::Nonce { .. })
        ));
    }
}

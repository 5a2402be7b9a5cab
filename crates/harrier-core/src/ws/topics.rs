//! One I/O thread's pub/sub table: topic names to the slots of the WebSockets subscribed
//! there. A publish reaches every thread, and each frames the message once for its own
//! subscribers.

use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct Topics {
    ids: HashMap<Box<[u8]>, u32>,
    /// By topic id: the subscribed slots, in no particular order.
    subscribers: Vec<Vec<u32>>,
    names: Vec<Box<[u8]>>,
    /// Ids of topics that lost their last subscriber, to reuse.
    free: Vec<u32>,
}

impl Topics {
    /// Subscribes `slot` to `topic`; the topic's id if it was not subscribed yet.
    pub fn subscribe(&mut self, topic: &[u8], slot: u32) -> Option<u32> {
        let id = match self.ids.get(topic) {
            Some(&id) => id,
            None => {
                let id = match self.free.pop() {
                    Some(id) => {
                        self.names[id as usize] = topic.into();
                        id
                    }
                    None => {
                        self.subscribers.push(Vec::new());
                        self.names.push(topic.into());
                        (self.subscribers.len() - 1) as u32
                    }
                };
                self.ids.insert(topic.into(), id);
                id
            }
        };
        let list = &mut self.subscribers[id as usize];
        if list.contains(&slot) {
            return None;
        }
        list.push(slot);
        Some(id)
    }

    /// Takes `slot` off topic `id`; a topic left without subscribers is forgotten.
    pub fn unsubscribe(&mut self, id: u32, slot: u32) {
        let Some(list) = self.subscribers.get_mut(id as usize) else {
            return;
        };
        if let Some(at) = list.iter().position(|&s| s == slot) {
            list.swap_remove(at);
        }
        if list.is_empty() && !self.names[id as usize].is_empty() {
            *list = Vec::new();
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
        }
    }

    pub fn find(&self, topic: &[u8]) -> Option<u32> {
        self.ids.get(topic).copied()
    }

    /// The subscribers of topic `id`, taken out to be walked while connections are written
    /// to; give them back with `restore`.
    pub fn take_subscribers(&mut self, id: u32) -> Vec<u32> {
        std::mem::take(&mut self.subscribers[id as usize])
    }

    pub fn restore(&mut self, id: u32, list: Vec<u32>) {
        self.subscribers[id as usize] = list;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_lives_while_it_has_subscribers() {
        let mut t = Topics::default();
        let a = t.subscribe(b"news", 1).unwrap();
        assert_eq!(t.subscribe(b"news", 1), None, "twice is once");
        assert_eq!(t.subscribe(b"news", 2), Some(a));
        t.unsubscribe(a, 1);
        assert_eq!(t.find(b"news"), Some(a));
        t.unsubscribe(a, 2);
        assert_eq!(t.find(b"news"), None, "forgotten with its last subscriber");
        let b = t.subscribe(b"sport", 3).unwrap();
        assert_eq!(b, a, "its id is reused");
        assert_eq!(t.take_subscribers(b), vec![3]);
    }
}

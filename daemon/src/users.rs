//! uid → user name, cached (the passwd lookup is not free).

use foldhash::HashMap;

#[derive(Debug, Default)]
pub struct UserNames {
    cache: HashMap<u32, Option<crate::event::SharedStr>>,
}

impl UserNames {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn name(&mut self, uid: u32) -> Option<crate::event::SharedStr> {
        self.cache
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name.into())
            })
            .clone()
    }
}

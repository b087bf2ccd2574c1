//! Who sends the events: per workspace, its devices (anonymous ids), its
//! users (each with 1-3 devices, some with an email) and its newsletter
//! readers (emails that belong to no user yet).

use rand::rngs::StdRng;
use rand::Rng;

/// The most devices one user signs in on.
pub(crate) const MAX_DEVICES_PER_USER: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct Device {
    /// A UUID v4, as browser and mobile SDKs send.
    pub id: String,
    /// A mobile app install: only ever used signed in.
    pub mobile: bool,
    /// The user signed in on it now, as an index into `Workspace::users`.
    pub current_user: Option<usize>,
    /// In use by a session still being emitted: other sessions leave it
    /// alone, so each device's events stay in causal order.
    pub busy: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    /// `user-{number}`; numbers start at 1.
    pub number: u32,
    pub email: Option<String>,
    /// Indices into `Workspace::devices`; 1..=MAX_DEVICES_PER_USER of them.
    pub devices: Vec<usize>,
    /// In use by a session still being emitted.
    pub busy: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Workspace {
    pub devices: Vec<Device>,
    pub users: Vec<User>,
    /// Indices of users that have an email.
    pub with_email: Vec<usize>,
    /// Devices that have never signed in (and mostly never will).
    pub anonymous: Vec<usize>,
    /// Emails known only from newsletters and email surveys.
    pub readers: Vec<String>,
    next_reader: u32,
}

impl Workspace {
    pub(crate) fn new_device(&mut self, rng: &mut StdRng, mobile: bool) -> usize {
        self.devices.push(Device {
            id: uuid_v4(rng),
            mobile,
            current_user: None,
            busy: false,
        });
        self.devices.len() - 1
    }

    pub(crate) fn new_reader(&mut self) -> String {
        self.next_reader += 1;
        let email = format!("reader{}@example.org", self.next_reader);
        self.readers.push(email.clone());
        email
    }

    /// A new user whose first device is `device`.
    pub(crate) fn new_user(&mut self, device: usize, email: Option<String>) -> usize {
        let index = self.users.len();
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if email.is_some() {
            self.with_email.push(index);
        }
        self.users.push(User {
            number,
            email,
            devices: vec![device],
            busy: false,
        });
        index
    }

    /// Records that `user` signed in on `device`.
    pub(crate) fn sign_in(&mut self, user: usize, device: usize) {
        self.devices[device].current_user = Some(user);
        let devices = &mut self.users[user].devices;
        if !devices.contains(&device) && devices.len() < MAX_DEVICES_PER_USER {
            devices.push(device);
        }
    }
}

/// A uniform index in `0..len` (`len > 0`), the same on 32- and 64-bit machines.
pub(crate) fn index(rng: &mut StdRng, len: usize) -> usize {
    rng.gen_range(0..len as u64) as usize
}

/// An index in `0..len` (`len > 0`) that favours the first entries: a few
/// power users send much of the traffic.
pub(crate) fn skewed_index(rng: &mut StdRng, len: usize) -> usize {
    let x: f64 = rng.gen();
    ((x * x * len as f64) as usize).min(len - 1)
}

fn uuid_v4(rng: &mut StdRng) -> String {
    let a: u64 = rng.gen();
    let b: u64 = rng.gen();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn device_ids_look_like_uuids() {
        let mut rng = StdRng::seed_from_u64(3);
        let id = uuid_v4(&mut rng);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(
            id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "{id}"
        );
    }

    #[test]
    fn users_keep_at_most_three_devices() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut w = Workspace::default();
        let first = w.new_device(&mut rng, false);
        let user = w.new_user(first, Some("u1@example.com".into()));
        for _ in 0..5 {
            let d = w.new_device(&mut rng, true);
            w.sign_in(user, d);
            assert_eq!(w.devices[d].current_user, Some(user));
        }
        assert_eq!(w.users[user].devices.len(), MAX_DEVICES_PER_USER);
        assert_eq!(w.with_email, [user]);
    }

    #[test]
    fn skewed_indices_stay_in_range_and_favour_the_front() {
        let mut rng = StdRng::seed_from_u64(5);
        let picks: Vec<usize> = (0..10_000).map(|_| skewed_index(&mut rng, 10)).collect();
        assert!(picks.iter().all(|&i| i < 10));
        let front = picks.iter().filter(|&&i| i < 5).count();
        assert!(front > 6_000, "{front}");
        assert!((0..100).all(|_| index(&mut rng, 1) == 0));
    }
}

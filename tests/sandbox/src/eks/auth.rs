//! EKS token authentication on the Kubernetes API: which tokens are accepted, and which
//! Kubernetes identity their signing key maps to.

use jiff::SignedDuration;

use super::{DEFAULT_ADMIN_USER, spec, token};
use crate::api_state::Identity;
use crate::cluster::Cluster;

/// Authenticates a bearer token on the Kubernetes API: `None` unless it is a valid EKS token
/// for this cluster whose access key maps to an identity. Tokens live 15 real minutes, as on
/// EKS, unless the scenario ages them on the virtual clock (`eks.tokenClock: virtual`): then
/// the first time a token is seen its virtual signing time is fixed (virtual now − virtual
/// age), so later clock jumps age it too.
pub fn authenticate(c: &mut Cluster, bearer: &str) -> Option<Identity> {
    if !bearer.starts_with(token::PREFIX) {
        return None;
    }
    let virtual_clock = c.eks.token_clock == spec::TokenClock::Virtual;
    let scale = if virtual_clock { c.clock.scale() } else { 1.0 };
    let claims = match token::authenticate_eks_token(bearer, &c.eks.name, &c.eks.region, scale) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(reason = %e, "EKS token refused");
            return None;
        }
    };
    let now = c.clock.now();
    let eks = &mut c.eks;
    if virtual_clock {
        if eks.token_seen.len() > 10_000 {
            eks.token_seen.clear();
        }
        let signed = *eks
            .token_seen
            .entry(claims.signature.clone())
            .or_insert(now - claims.age);
        let limit = SignedDuration::try_from(token::VALIDITY).unwrap_or(SignedDuration::MAX);
        if now.duration_since(signed) > limit {
            tracing::debug!(age = %now.duration_since(signed), "EKS token refused: expired (virtual time)");
            return None;
        }
    }
    let key = claims.access_key_id.clone();
    if let Some(e) = eks.access.iter().find(|e| e.access_key_id == key) {
        if let Some(secret) = &e.secret_access_key
            && !token::signature_matches(&claims, &eks.name, &eks.region, secret)
        {
            tracing::debug!(key = %key, "EKS token refused: signature does not match this cluster and key");
            return None;
        }
        let arn = e
            .principal_arn
            .clone()
            .unwrap_or_else(|| format!("arn:aws:iam::{}:user/{key}", eks.account));
        let mut groups = e.groups.clone();
        groups.push("system:authenticated".into());
        return Some(Identity {
            user: e.username.clone().unwrap_or(arn),
            groups,
            dry_run: false,
        });
    }
    eks.default_admin.then(|| Identity {
        user: DEFAULT_ADMIN_USER.into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        dry_run: false,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use opsteps::eks_token::presign;

    use super::*;
    use crate::eks::load;
    use crate::scenario::{Scenario, cluster_from};

    fn cluster(yaml: &str) -> Cluster {
        let s = Scenario::from_yaml(yaml).unwrap();
        let mut c = cluster_from(&s).unwrap();
        load(&mut c, &s).unwrap();
        c
    }

    fn token(key: &str, secret: &str, cluster: &str) -> String {
        let creds = Credentials::new(key, secret, None, None, "test");
        presign(cluster, "eu-west-1", creds, SystemTime::now()).unwrap()
    }

    #[test]
    fn access_entries_map_keys_and_secrets_bind_the_cluster() {
        let mut c = cluster(
            r"
cluster: {name: prod-a, region: eu-west-1}
clock: {scale: 1}
eks:
  tokenClock: virtual
  accessEntries:
    - {accessKeyId: AKIDSIGNED, username: signed, groups: [ops], secretAccessKey: right-secret}
    - {accessKeyId: AKIDROLE, principalArn: 'arn:aws:iam::111122223333:role/ops'}
",
        );
        let who = |c: &mut Cluster, t: &str| authenticate(c, t).map(|i| i.user);
        let signed = authenticate(&mut c, &token("AKIDSIGNED", "right-secret", "prod-a")).unwrap();
        assert_eq!(signed.user, "signed");
        assert_eq!(signed.groups, ["ops", "system:authenticated"]);
        assert_eq!(
            who(&mut c, &token("AKIDSIGNED", "right-secret", "prod-b")),
            None
        );
        assert_eq!(who(&mut c, &token("AKIDSIGNED", "wrong", "prod-a")), None);
        assert_eq!(
            who(&mut c, &token("AKIDROLE", "any", "prod-a")).as_deref(),
            Some("arn:aws:iam::111122223333:role/ops")
        );
        assert_eq!(
            who(&mut c, &token("AKIDOTHER", "any", "prod-a")).as_deref(),
            Some(DEFAULT_ADMIN_USER)
        );
        assert_eq!(who(&mut c, "sandbox-1-2"), None, "not an EKS token");
        let t = token("AKIDOTHER", "any", "prod-a");
        assert!(authenticate(&mut c, &t).is_some());
        c.clock.advance(Duration::from_mins(16));
        assert!(authenticate(&mut c, &t).is_none(), "aged by the clock jump");
    }

    #[test]
    fn tokens_age_in_real_time_by_default() {
        let mut c = cluster("cluster: {name: prod-a, region: eu-west-1}\nclock: {scale: 60}");
        assert_eq!(c.eks.token_clock, spec::TokenClock::Real);
        let creds = Credentials::new("AKIDANY", "any", None, None, "test");
        // Ten real minutes old: 600 virtual minutes at scale 60, still fresh in real time.
        let ten_minutes = SystemTime::now() - Duration::from_mins(10);
        let t = presign("prod-a", "eu-west-1", creds.clone(), ten_minutes).unwrap();
        assert!(authenticate(&mut c, &t).is_some());
        c.clock.advance(Duration::from_hours(2));
        assert!(
            authenticate(&mut c, &t).is_some(),
            "clock jumps do not age it"
        );
        let old = SystemTime::now() - Duration::from_mins(16);
        let t = presign("prod-a", "eu-west-1", creds, old).unwrap();
        assert!(authenticate(&mut c, &t).is_none(), "16 real minutes");
    }
}

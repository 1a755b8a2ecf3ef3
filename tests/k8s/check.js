#!/usr/bin/env node
// Checks rendered kustomize overlays (`kubectl kustomize k8s/overlays/NAME`):
// every object against its schema — Kubernetes' from kubernetes-models, KEDA's
// CRDs from @kubernetes-models/keda, all offline — then the properties Patron's
// deployment relies on (probes, security context, drain time, autoscaling
// within the partition count, selectors, secrets, network policy).
//
//   node check.js NAME=FILE...              findings on stderr, exit 1 if any
//   node check.js --self-test NAME=FILE...  every deliberate break of the
//                                           first overlay must be caught
// The alerts and the Grafana dashboard are checked by monitoring.js, in the
// overlays and on their own (--monitoring, --monitoring-self-test).
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');
const monitoring = require('./monitoring.js');

const IMAGE_UID = 10001; // the Dockerfile's USER
const DEFAULT_HTTP_PORT = 8080; // PATRON_HTTP_ADDR's default
const DEFAULT_DRAIN_MS = 10000; // PATRON_SHUTDOWN_TIMEOUT_MS's default
const DEFAULT_REDIS_PORT = 6379;
const PARTITIONS_ANNOTATION = 'patron/topic-partitions';

// Secrets that production creates out of band (k8s/README.md): a reference
// to one of these keys is satisfied although no Secret is rendered.
const EXTERNAL_SECRETS = {
    'patron-kafka': ['PATRON_RDKAFKA_SASL_USERNAME', 'PATRON_RDKAFKA_SASL_PASSWORD'],
    // one Redis (`url`, PATRON_REDIS_URL) or a cluster's seed list with its
    // password (`cluster`, PATRON_REDIS_CLUSTER)
    'patron-redis': ['url', 'cluster'],
    'patron-api-token': ['token'],
};

// What each lag-scaled program consumes: the variable naming its topic and
// that variable's default (docs/configuration.md).
const CONSUMED_TOPIC = {
    'patron-ingest': ['PATRON_TOPIC_EVENTS', 'patron.events'],
    'patron-trigger': ['PATRON_TOPIC_PROFILE_UPDATES', 'patron.profile-updates'],
};

// Values that must never be in a ConfigMap or a literal env value (both
// Redis variables carry the password).
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|SASL_USERNAME|SSL_KEY_PEM|REDIS_URL|REDIS_CLUSTER/;

// The two ways to reach Redis (config.c): exactly one of them.
const REDIS_VARS = ['PATRON_REDIS_URL', 'PATRON_REDIS_CLUSTER'];

// ---------------------------------------------------------------- schemas --

function modelFor(apiVersion, kind) {
    let mod;
    try {
        if (apiVersion.startsWith('keda.sh/'))
            mod = require(`@kubernetes-models/keda/${apiVersion}`);
        else mod = require(`kubernetes-models/${apiVersion}`);
    } catch (e) {
        return null;
    }
    return typeof mod[kind] === 'function' ? mod[kind] : null;
}

function schemaFindings(obj) {
    if (obj.kind === 'PrometheusRule') return []; // no model: monitoring.js checks it
    const Model = modelFor(String(obj.apiVersion), String(obj.kind));
    if (!Model) return [`schema: no schema for ${obj.apiVersion} ${obj.kind}`];
    try {
        new Model(obj).validate();
    } catch (e) {
        return [`schema: ${e.message}`];
    }
    return [];
}

// ------------------------------------------------------------------ helpers --

function knownVars() {
    // The services' own list (config.c's VARS): a name not in it is a typo
    // that the service would only warn about.
    const src = path.join(__dirname, '..', '..', 'services', 'core', 'codec', 'config.c');
    const text = fs.readFileSync(src, 'utf8');
    const names = new Set();
    for (const m of text.matchAll(/\{"(PATRON_[A-Z0-9_]+)"/g)) names.add(m[1]);
    if (names.size < 10) throw new Error(`found only ${names.size} variables in ${src}`);
    return names;
}

function id(obj) {
    return `${obj.kind}/${obj.metadata && obj.metadata.name}`;
}

function labelsMatch(selector, labels) {
    if (!selector) return false;
    labels = labels || {};
    const ml = selector.matchLabels || {};
    const exprs = selector.matchExpressions || [];
    if (Object.keys(ml).length === 0 && exprs.length === 0) return true;
    for (const [k, v] of Object.entries(ml)) if (labels[k] !== v) return false;
    for (const e of exprs) {
        const has = Object.prototype.hasOwnProperty.call(labels, e.key);
        const vals = e.values || [];
        if (e.operator === 'In' && !(has && vals.includes(labels[e.key]))) return false;
        if (e.operator === 'NotIn' && has && vals.includes(labels[e.key])) return false;
        if (e.operator === 'Exists' && !has) return false;
        if (e.operator === 'DoesNotExist' && has) return false;
    }
    return true;
}

// Kubernetes quantities, enough for cpu and memory: "500m", "2", "256Mi", "1G".
function quantity(q) {
    const m = /^([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
    if (!m) return NaN;
    const mult = {
        m: 1e-3,
        Ki: 1024,
        Mi: 1024 ** 2,
        Gi: 1024 ** 3,
        Ti: 1024 ** 4,
        k: 1e3,
        M: 1e6,
        G: 1e9,
        T: 1e12,
    };
    return parseFloat(m[1]) * (m[2] ? mult[m[2]] : 1);
}

function portOf(addr) {
    const m = /:([0-9]+)$/.exec(String(addr));
    return m ? parseInt(m[1], 10) : NaN;
}

function program(container) {
    const cmd = container.command || [];
    return cmd.length ? path.basename(cmd[0]) : '';
}

// ------------------------------------------------------------------- checks --

function checkOverlay(name, docs, known) {
    const findings = [];
    const add = (obj, msg) => findings.push(`${name}: ${obj ? id(obj) : '-'}: ${msg}`);
    const of = kind => docs.filter(d => d.kind === kind);
    const named = (kind, n) => docs.find(d => d.kind === kind && d.metadata.name === n);

    for (const d of docs) for (const f of schemaFindings(d)) add(d, f);

    // one namespace, restricted Pod Security, everything in it
    const nss = of('Namespace');
    if (nss.length !== 1) {
        add(null, `expected one Namespace, found ${nss.length}`);
    } else {
        const ns = nss[0];
        const l = ns.metadata.labels || {};
        if (l['pod-security.kubernetes.io/enforce'] !== 'restricted')
            add(ns, 'pod-security.kubernetes.io/enforce must be "restricted"');
        for (const d of docs)
            if (d.kind !== 'Namespace' && d.metadata.namespace !== ns.metadata.name)
                add(d, `not in namespace ${ns.metadata.name}`);
    }

    // ConfigMaps: known variables only, nothing secret
    for (const cm of of('ConfigMap')) {
        for (const k of Object.keys(cm.data || {})) {
            if (SECRET_NAME.test(k)) add(cm, `${k} is a credential: it belongs in a Secret`);
            if (k.startsWith('PATRON_') && !k.startsWith('PATRON_RDKAFKA_') && !known.has(k))
                add(cm, `${k} is not a Patron variable (config.c)`);
        }
    }

    const secretHas = (sname, key) => {
        const s = named('Secret', sname);
        if (s)
            return (
                Object.prototype.hasOwnProperty.call(s.data || {}, key) ||
                Object.prototype.hasOwnProperty.call(s.stringData || {}, key)
            );
        return (EXTERNAL_SECRETS[sname] || []).includes(key);
    };
    const secretKeys = sname => {
        const s = named('Secret', sname);
        if (s) return Object.keys(Object.assign({}, s.data, s.stringData));
        return EXTERNAL_SECRETS[sname] || null;
    };

    // The environment a container starts with: name -> {from, value}.
    const envOf = (obj, c) => {
        const env = {};
        for (const ef of c.envFrom || []) {
            if (ef.configMapRef) {
                const cm = named('ConfigMap', ef.configMapRef.name);
                if (!cm) {
                    add(obj, `envFrom ConfigMap ${ef.configMapRef.name} is not rendered`);
                    continue;
                }
                for (const [k, v] of Object.entries(cm.data || {}))
                    env[(ef.prefix || '') + k] = { from: 'configmap', value: String(v) };
            } else if (ef.secretRef) {
                const keys = secretKeys(ef.secretRef.name);
                if (!keys) {
                    if (!ef.secretRef.optional)
                        add(
                            obj,
                            `envFrom Secret ${ef.secretRef.name} is neither rendered nor ` +
                                'documented (EXTERNAL_SECRETS)',
                        );
                    continue;
                }
                for (const k of keys) env[(ef.prefix || '') + k] = { from: 'secret' };
            }
        }
        for (const e of c.env || []) {
            if (e.valueFrom && e.valueFrom.secretKeyRef) {
                const r = e.valueFrom.secretKeyRef;
                if (!secretHas(r.name, r.key) && !r.optional)
                    add(
                        obj,
                        `${e.name}: Secret ${r.name} key ${r.key} is neither rendered nor ` +
                            'documented (EXTERNAL_SECRETS)',
                    );
                env[e.name] = { from: 'secret' };
            } else if (e.valueFrom && e.valueFrom.configMapKeyRef) {
                const r = e.valueFrom.configMapKeyRef;
                const cm = named('ConfigMap', r.name);
                if (!cm || !(r.key in (cm.data || {}))) {
                    add(obj, `${e.name}: ConfigMap ${r.name} key ${r.key} is not rendered`);
                    continue;
                }
                env[e.name] = { from: 'configmap', value: String(cm.data[r.key]) };
            } else if (e.valueFrom) {
                env[e.name] = { from: 'field' };
            } else {
                env[e.name] = {
                    from: 'literal',
                    value: String(e.value === undefined ? '' : e.value),
                };
            }
        }
        return env;
    };
    const envValue = (env, k, def) => (env[k] && env[k].value !== undefined ? env[k].value : def);

    // Autoscalers, by the Deployment they scale.
    const scalers = {};
    for (const h of of('HorizontalPodAutoscaler')) {
        const t = h.spec.scaleTargetRef || {};
        if (t.kind !== 'Deployment' || !named('Deployment', t.name)) {
            add(h, `scaleTargetRef ${t.kind}/${t.name} is not a rendered Deployment`);
            continue;
        }
        (scalers[t.name] = scalers[t.name] || []).push({
            obj: h,
            min: h.spec.minReplicas || 1,
            max: h.spec.maxReplicas,
        });
    }
    for (const so of of('ScaledObject')) {
        const t = so.spec.scaleTargetRef || {};
        if ((t.kind || 'Deployment') !== 'Deployment' || !named('Deployment', t.name)) {
            add(
                so,
                `scaleTargetRef ${t.kind || 'Deployment'}/${t.name} is not a rendered Deployment`,
            );
            continue;
        }
        const min = so.spec.minReplicaCount === undefined ? 0 : so.spec.minReplicaCount;
        const max = so.spec.maxReplicaCount === undefined ? 100 : so.spec.maxReplicaCount;
        (scalers[t.name] = scalers[t.name] || []).push({ obj: so, min, max });
    }

    const deployments = of('Deployment');
    const podsOf = dep => dep.spec.template.metadata.labels || {};
    const programs = {};

    for (const dep of deployments) {
        const spec = dep.spec.template.spec;
        const podLabels = podsOf(dep);
        const ann = dep.spec.template.metadata.annotations || {};
        const psc = spec.securityContext || {};

        if (!labelsMatch(dep.spec.selector, podLabels))
            add(dep, 'selector does not match its pod template labels');
        if (podLabels['app.kubernetes.io/part-of'] !== 'patron')
            add(dep, 'pods lack app.kubernetes.io/part-of=patron');

        const sc = scalers[dep.metadata.name] || [];
        if (sc.length !== 1)
            add(dep, `expected exactly one autoscaler (HPA or ScaledObject), found ${sc.length}`);
        else if (dep.spec.replicas !== undefined)
            add(dep, 'sets spec.replicas although its autoscaler owns the count');
        const minReplicas = sc.length
            ? sc[0].min
            : dep.spec.replicas === undefined
              ? 1
              : dep.spec.replicas;

        if (spec.automountServiceAccountToken !== false)
            add(dep, 'automountServiceAccountToken must be false');
        if (spec.enableServiceLinks !== false)
            add(dep, 'enableServiceLinks must be false (PATRON_API_* service variables)');
        for (const k of ['hostNetwork', 'hostPID', 'hostIPC'])
            if (spec[k]) add(dep, `${k} must not be set`);
        if (minReplicas > 1) {
            const tsc = spec.topologySpreadConstraints || [];
            if (!tsc.length || !tsc.every(t => labelsMatch(t.labelSelector, podLabels)))
                add(
                    dep,
                    `${minReplicas} replicas need topologySpreadConstraints selecting its pods`,
                );
        }

        if (!spec.containers || spec.containers.length !== 1) {
            add(dep, 'expected one container');
            continue;
        }
        const c = spec.containers[0];
        const csc = c.securityContext || {};
        const eff = k => (csc[k] !== undefined ? csc[k] : psc[k]);
        const prog = program(c);
        programs[dep.metadata.name] = prog;

        if (!/^\/usr\/local\/bin\/patron-[a-z]+$/.test((c.command || [])[0] || ''))
            add(dep, 'command must be /usr/local/bin/patron-<program>');
        const image = String(c.image || '');
        const tag = image.includes('@') ? 'digest' : image.split('/').pop().split(':')[1];
        if (!tag || tag === 'latest') add(dep, `image ${image} needs a tag other than latest`);

        // security context: the restricted profile and the image's user
        if (eff('runAsNonRoot') !== true) add(dep, 'runAsNonRoot must be true');
        if (eff('runAsUser') !== IMAGE_UID)
            add(dep, `runAsUser must be ${IMAGE_UID} (the image's user)`);
        if (csc.allowPrivilegeEscalation !== false)
            add(dep, 'allowPrivilegeEscalation must be false');
        if (csc.readOnlyRootFilesystem !== true) add(dep, 'readOnlyRootFilesystem must be true');
        if (csc.privileged) add(dep, 'privileged must not be set');
        const caps = csc.capabilities || {};
        if (!(caps.drop || []).includes('ALL')) add(dep, 'capabilities must drop ALL');
        if ((caps.add || []).length) add(dep, 'capabilities must add none');
        const seccomp = (eff('seccompProfile') || {}).type;
        if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
            add(dep, 'seccompProfile must be RuntimeDefault');

        // configuration and credentials
        const env = envOf(dep, c);
        for (const [k, v] of Object.entries(env)) {
            if (k.startsWith('PATRON_') && !k.startsWith('PATRON_RDKAFKA_') && !known.has(k))
                add(dep, `${k} is not a Patron variable (config.c)`);
            if (SECRET_NAME.test(k) && v.from !== 'secret')
                add(dep, `${k} must come from a Secret, not ${v.from}`);
        }
        // empty counts as unset (config.c); a Secret's value is unknown here
        const redis = REDIS_VARS.filter(k => env[k] && env[k].value !== '');
        if (!redis.length)
            add(dep, 'neither PATRON_REDIS_URL nor PATRON_REDIS_CLUSTER is set');
        if (redis.length > 1)
            add(
                dep,
                'sets both PATRON_REDIS_URL and PATRON_REDIS_CLUSTER: the services refuse to start',
            );
        if (prog === 'patron-api' && !env.PATRON_API_TOKEN)
            add(dep, 'the API needs PATRON_API_TOKEN (from a Secret)');

        // the port the service listens on, and the probes and scrape on it
        const httpPort = env.PATRON_HTTP_ADDR
            ? portOf(envValue(env, 'PATRON_HTTP_ADDR'))
            : DEFAULT_HTTP_PORT;
        const ports = c.ports || [];
        const resolve = p => {
            if (typeof p === 'number') return p;
            const cp = ports.find(x => x.name === p);
            return cp ? cp.containerPort : NaN;
        };
        if (!ports.some(p => p.containerPort === httpPort))
            add(dep, `no containerPort ${httpPort} (PATRON_HTTP_ADDR)`);
        for (const [probe, want] of [
            ['livenessProbe', '/healthz'],
            ['readinessProbe', '/readyz'],
        ]) {
            const g = c[probe] && c[probe].httpGet;
            if (!g) add(dep, `${probe} must be an httpGet on ${want}`);
            else if (g.path !== want || resolve(g.port) !== httpPort)
                add(
                    dep,
                    `${probe} must get ${want} on port ${httpPort}, not ${g.path} on ${g.port}`,
                );
        }
        if (
            ann['prometheus.io/scrape'] !== 'true' ||
            ann['prometheus.io/path'] !== '/metrics' ||
            parseInt(ann['prometheus.io/port'], 10) !== httpPort
        )
            add(dep, `pods need prometheus.io/scrape "true", port "${httpPort}", path /metrics`);

        // resources
        const res = c.resources || {};
        for (const r of ['cpu', 'memory']) {
            const req = quantity((res.requests || {})[r]);
            const lim = quantity((res.limits || {})[r]);
            if (!(req > 0)) add(dep, `resources.requests.${r} missing`);
            if (!(lim > 0)) add(dep, `resources.limits.${r} missing`);
            if (req > lim) add(dep, `resources.requests.${r} exceeds its limit`);
        }

        // SIGTERM drains for PATRON_SHUTDOWN_TIMEOUT_MS after preStop
        const drainMs = parseInt(envValue(env, 'PATRON_SHUTDOWN_TIMEOUT_MS', DEFAULT_DRAIN_MS), 10);
        const pre = c.lifecycle && c.lifecycle.preStop;
        const preS = pre && pre.sleep ? pre.sleep.seconds : 0;
        if (pre && !pre.sleep)
            add(dep, 'preStop must be a sleep action (there is no shell in the image)');
        const grace =
            spec.terminationGracePeriodSeconds === undefined
                ? 30
                : spec.terminationGracePeriodSeconds;
        if (!(grace * 1000 > drainMs + preS * 1000))
            add(
                dep,
                `terminationGracePeriodSeconds ${grace} must exceed preStop ${preS} s + ` +
                    `PATRON_SHUTDOWN_TIMEOUT_MS ${drainMs} ms`,
            );

        dep._patron = { env, httpPort, minReplicas, prog };
    }

    // KEDA: lag of the program's own group on its own topic, within partitions
    for (const so of of('ScaledObject')) {
        const dep = named('Deployment', (so.spec.scaleTargetRef || {}).name);
        if (!dep || !dep._patron) continue;
        const { env, prog } = dep._patron;
        const parts = parseInt((so.metadata.annotations || {})[PARTITIONS_ANNOTATION], 10);
        if (!(parts > 0))
            add(so, `annotation ${PARTITIONS_ANNOTATION} (the topic's partition count) missing`);
        const min = so.spec.minReplicaCount === undefined ? 0 : so.spec.minReplicaCount;
        const max = so.spec.maxReplicaCount === undefined ? 100 : so.spec.maxReplicaCount;
        if (min < 1)
            add(
                so,
                'minReplicaCount must be at least 1 (timers and the event clock run in the pods)',
            );
        if (max < min) add(so, 'maxReplicaCount is below minReplicaCount');
        if (parts > 0 && max > parts)
            add(so, `maxReplicaCount ${max} exceeds the ${parts} partitions: consumers would idle`);
        const kafka = (so.spec.triggers || []).filter(t => t.type === 'kafka');
        if (!kafka.length) add(so, 'needs a kafka trigger');
        const topicRule = CONSUMED_TOPIC[prog];
        if (!topicRule) add(so, `no consumed-topic rule for ${prog} (CONSUMED_TOPIC)`);
        const proto = envValue(env, 'PATRON_RDKAFKA_SECURITY_PROTOCOL', 'plaintext').toLowerCase();
        for (const t of kafka) {
            const m = t.metadata || {};
            const group = envValue(env, 'PATRON_GROUP_ID', prog);
            if (m.consumerGroup !== group)
                add(so, `consumerGroup ${m.consumerGroup} is not the pods' group ${group}`);
            if (topicRule && m.topic !== envValue(env, topicRule[0], topicRule[1]))
                add(so, `topic ${m.topic} is not what ${prog} consumes (${topicRule[0]})`);
            const brokers = envValue(env, 'PATRON_KAFKA_BROKERS', '127.0.0.1:9092');
            if (m.bootstrapServers !== brokers)
                add(
                    so,
                    `bootstrapServers ${m.bootstrapServers} differ from PATRON_KAFKA_BROKERS ${brokers}`,
                );
            if (!/^[1-9][0-9]*$/.test(String(m.lagThreshold)))
                add(so, 'lagThreshold must be a positive integer');
            if (m.allowIdleConsumers === 'true')
                add(so, 'allowIdleConsumers would scale past the partitions');
            const wantSasl = proto.startsWith('sasl');
            if (wantSasl !== Boolean(m.sasl && m.sasl !== 'none'))
                add(so, `sasl ${m.sasl} does not match the pods' security.protocol ${proto}`);
            if (proto.endsWith('ssl') !== (m.tls === 'enable'))
                add(so, `tls ${m.tls} does not match the pods' security.protocol ${proto}`);
            if (wantSasl) {
                const ref = t.authenticationRef || {};
                const ta = named(
                    ref.kind === 'ClusterTriggerAuthentication'
                        ? 'ClusterTriggerAuthentication'
                        : 'TriggerAuthentication',
                    ref.name,
                );
                if (!ta) {
                    add(
                        so,
                        `authenticationRef ${ref.name} is not a rendered TriggerAuthentication`,
                    );
                } else {
                    const params = (ta.spec.secretTargetRef || []).map(s => s.parameter);
                    for (const p of ['username', 'password'])
                        if (!params.includes(p)) add(ta, `no secretTargetRef for ${p}`);
                    for (const s of ta.spec.secretTargetRef || [])
                        if (!secretHas(s.name, s.key))
                            add(
                                ta,
                                `Secret ${s.name} key ${s.key} is neither rendered nor documented`,
                            );
                }
            }
        }
    }

    // HPA: CPU utilization needs CPU requests
    for (const h of of('HorizontalPodAutoscaler')) {
        if (h.apiVersion !== 'autoscaling/v2') add(h, 'must be autoscaling/v2');
        if (!(h.spec.maxReplicas >= (h.spec.minReplicas || 1)))
            add(h, 'maxReplicas is below minReplicas');
        const cpu = (h.spec.metrics || []).some(
            m =>
                m.type === 'Resource' &&
                m.resource &&
                m.resource.name === 'cpu' &&
                m.resource.target.type === 'Utilization',
        );
        if (!cpu) add(h, 'needs a cpu Utilization metric');
    }

    // PodDisruptionBudgets: one per Deployment, selecting its pods only,
    // never blocking a drain outright
    for (const pdb of of('PodDisruptionBudget')) {
        const hits = deployments.filter(d => labelsMatch(pdb.spec.selector, podsOf(d)));
        if (hits.length !== 1)
            add(pdb, `selector matches ${hits.length} Deployments' pods, expected 1`);
    }
    for (const dep of deployments) {
        const pdbs = of('PodDisruptionBudget').filter(p =>
            labelsMatch(p.spec.selector, podsOf(dep)),
        );
        if (pdbs.length !== 1) {
            add(dep, `expected one PodDisruptionBudget selecting its pods, found ${pdbs.length}`);
            continue;
        }
        const p = pdbs[0].spec;
        const minR = dep._patron ? dep._patron.minReplicas : 1;
        if (
            p.minAvailable !== undefined &&
            typeof p.minAvailable === 'number' &&
            p.minAvailable >= minR
        )
            add(
                pdbs[0],
                `minAvailable ${p.minAvailable} with ${minR} replicas blocks every eviction`,
            );
        if (p.maxUnavailable !== undefined && (p.maxUnavailable === 0 || p.maxUnavailable === '0%'))
            add(pdbs[0], 'maxUnavailable 0 blocks every eviction');
    }

    // Services: the API's, selecting its pods only, on its http port
    for (const svc of of('Service')) {
        const hits = deployments.filter(d =>
            labelsMatch({ matchLabels: svc.spec.selector || {} }, podsOf(d)),
        );
        if (!svc.spec.selector || hits.length !== 1) {
            add(svc, `selector matches ${hits.length} Deployments' pods, expected 1`);
            continue;
        }
        const c = hits[0].spec.template.spec.containers[0];
        for (const p of svc.spec.ports || []) {
            const tp = p.targetPort === undefined ? p.port : p.targetPort;
            const ok = (c.ports || []).some(cp => cp.name === tp || cp.containerPort === tp);
            if (!ok) add(svc, `targetPort ${tp} is not a port of ${hits[0].metadata.name}`);
        }
    }
    for (const dep of deployments)
        if (
            dep._patron &&
            dep._patron.prog === 'patron-api' &&
            !of('Service').some(
                s => s.spec.selector && labelsMatch({ matchLabels: s.spec.selector }, podsOf(dep)),
            )
        )
            add(dep, 'no Service selects the API pods');

    // NetworkPolicy: default deny both ways; in, the http port; out, only
    // DNS, Kafka and Redis
    const nps = of('NetworkPolicy');
    if (!nps.length) add(null, 'no NetworkPolicy');
    const rulePorts = r => (r.ports || []).map(p => `${p.port}/${p.protocol || 'TCP'}`);
    for (const np of nps)
        for (const r of np.spec.egress || []) {
            if (!(r.to || []).length || !(r.ports || []).length)
                add(np, 'an egress rule without `to` and `ports` allows everything');
        }
    for (const dep of deployments) {
        if (!dep._patron) continue;
        const { env, httpPort } = dep._patron;
        const sel = nps.filter(np => labelsMatch(np.spec.podSelector, podsOf(dep)));
        const types = new Set(sel.flatMap(np => np.spec.policyTypes || ['Ingress']));
        if (!types.has('Ingress') || !types.has('Egress'))
            add(dep, 'its pods need a NetworkPolicy with both Ingress and Egress');
        const ingress = sel.flatMap(np => np.spec.ingress || []).flatMap(rulePorts);
        if (!ingress.includes(`${httpPort}/TCP`))
            add(dep, `no NetworkPolicy admits port ${httpPort} (probes' port, /metrics)`);
        const egress = new Set(sel.flatMap(np => np.spec.egress || []).flatMap(rulePorts));
        const kafkaPorts = envValue(env, 'PATRON_KAFKA_BROKERS', '127.0.0.1:9092')
            .split(',')
            .map(portOf);
        const need = ['53/UDP', `${DEFAULT_REDIS_PORT}/TCP`, ...kafkaPorts.map(p => `${p}/TCP`)];
        for (const p of need)
            if (!egress.has(p))
                add(dep, `NetworkPolicy egress does not allow ${p} (DNS, Redis, Kafka)`);
        const allowed = new Set([
            '53/UDP',
            '53/TCP',
            `${DEFAULT_REDIS_PORT}/TCP`,
            '9092/TCP',
            '9093/TCP',
            ...kafkaPorts.map(p => `${p}/TCP`),
        ]);
        for (const p of egress)
            if (!allowed.has(p))
                add(dep, `NetworkPolicy egress allows ${p}, beyond DNS, Kafka and Redis`);
        if (dep._patron.prog === 'patron-api') {
            const inNs = sel
                .flatMap(np => np.spec.ingress || [])
                .some(
                    r =>
                        rulePorts(r).includes(`${httpPort}/TCP`) &&
                        (r.from || []).some(f => f.podSelector && !f.namespaceSelector),
                );
            if (!inNs) add(dep, "no NetworkPolicy admits the namespace's pods to the API port");
        }
    }

    // alerts and dashboard: one of each, every metric in the code (monitoring.js)
    const mon = (checkOverlay.monitoring = checkOverlay.monitoring || monitoring.context());
    const rules = of('PrometheusRule');
    const dashes = of('ConfigMap').filter(c => (c.metadata.labels || {}).grafana_dashboard);
    if (rules.length !== 1 || dashes.length !== 1)
        add(null, `expected a PrometheusRule and a dashboard, found ${rules.length}, ${dashes.length}`);
    for (const r of rules) for (const f of monitoring.checkRule(r, mon)) add(r, f);
    for (const d of dashes) for (const f of monitoring.checkDashboard(d, mon)) add(d, f);

    for (const d of deployments) delete d._patron;
    return findings;
}

// ---------------------------------------------------------------- self-test --

// Each break of a good overlay, and what the checker must then say.
const clone = o => JSON.parse(JSON.stringify(o));
const find = (docs, kind, n) => docs.find(d => d.kind === kind && (!n || d.metadata.name === n));
const cont = (docs, n) => find(docs, 'Deployment', n).spec.template.spec.containers[0];
// the services' environment (the campaigns file is a ConfigMap too)
const config = docs =>
    docs.find(d => d.kind === 'ConfigMap' && d.metadata.name.startsWith('patron-config'));
// the Redis variable a Deployment uses: dev has one Redis, prod a cluster
const redisVar = (docs, n) => {
    const names = (cont(docs, n).env || []).map(e => e.name);
    const v = REDIS_VARS.find(k => names.includes(k));
    if (!v) throw new Error(`${n} sets no Redis variable to break`);
    return v;
};
// A break is [what, the finding it must cause, how]; the finding may depend
// on the unbroken overlay (a function of it).
const BREAKS = [
    [
        'schema: a port as text',
        'schema',
        d => {
            cont(d, 'patron-api').ports[0].containerPort = 'http';
        },
    ],
    [
        'schema: a ScaledObject without target',
        'scaleTargetRef',
        d => {
            delete find(d, 'ScaledObject').spec.scaleTargetRef;
        },
    ],
    [
        'no readiness probe',
        'readinessProbe',
        d => {
            delete cont(d, 'patron-ingest').readinessProbe;
        },
    ],
    [
        'liveness on the wrong path',
        'livenessProbe',
        d => {
            cont(d, 'patron-api').livenessProbe.httpGet.path = '/';
        },
    ],
    [
        'probe on the wrong port',
        'readinessProbe',
        d => {
            cont(d, 'patron-ingest').readinessProbe.httpGet.port = 9090;
        },
    ],
    [
        'no memory limit',
        'limits.memory',
        d => {
            delete cont(d, 'patron-ingest').resources.limits.memory;
        },
    ],
    [
        'writable root filesystem',
        'readOnlyRootFilesystem',
        d => {
            cont(d, 'patron-api').securityContext.readOnlyRootFilesystem = false;
        },
    ],
    [
        'root',
        'runAsUser',
        d => {
            cont(d, 'patron-ingest').securityContext.runAsUser = 0;
        },
    ],
    [
        'privilege escalation',
        'allowPrivilegeEscalation',
        d => {
            delete cont(d, 'patron-ingest').securityContext.allowPrivilegeEscalation;
        },
    ],
    [
        'capabilities kept',
        'drop ALL',
        d => {
            delete cont(d, 'patron-api').securityContext.capabilities;
        },
    ],
    [
        'no seccomp',
        'seccompProfile',
        d => {
            delete cont(d, 'patron-ingest').securityContext.seccompProfile;
            delete find(d, 'Deployment', 'patron-ingest').spec.template.spec.securityContext
                .seccompProfile;
        },
    ],
    [
        'grace shorter than the drain',
        'terminationGracePeriodSeconds',
        d => {
            find(
                d,
                'Deployment',
                'patron-ingest',
            ).spec.template.spec.terminationGracePeriodSeconds = 20;
        },
    ],
    [
        'drain longer than the grace',
        'terminationGracePeriodSeconds',
        d => {
            config(d).data.PATRON_SHUTDOWN_TIMEOUT_MS = '60000';
        },
    ],
    [
        'no scrape annotation',
        'prometheus.io',
        d => {
            delete find(d, 'Deployment', 'patron-api').spec.template.metadata.annotations[
                'prometheus.io/scrape'
            ];
        },
    ],
    [
        'KEDA past the partitions',
        'exceeds the',
        d => {
            find(d, 'ScaledObject').spec.maxReplicaCount = 1000;
        },
    ],
    [
        'KEDA on another group',
        'consumerGroup',
        d => {
            find(d, 'ScaledObject').spec.triggers[0].metadata.consumerGroup = 'patron-other';
        },
    ],
    [
        'KEDA on another topic',
        'topic',
        d => {
            find(d, 'ScaledObject').spec.triggers[0].metadata.topic = 'x';
        },
    ],
    [
        'KEDA scales to zero',
        'minReplicaCount',
        d => {
            find(d, 'ScaledObject').spec.minReplicaCount = 0;
        },
    ],
    [
        'PDB selects nothing',
        'PodDisruptionBudget',
        d => {
            find(d, 'PodDisruptionBudget', 'patron-ingest').spec.selector.matchLabels[
                'app.kubernetes.io/component'
            ] = 'x';
        },
    ],
    [
        'Service selects nothing',
        'Service/patron-api',
        d => {
            find(d, 'Service', 'patron-api').spec.selector['app.kubernetes.io/component'] = 'apí';
        },
    ],
    [
        'no NetworkPolicy',
        'NetworkPolicy',
        d => {
            for (let i = d.length - 1; i >= 0; i--)
                if (d[i].kind === 'NetworkPolicy') d.splice(i, 1);
        },
    ],
    [
        'egress to anywhere',
        'allows everything',
        d => {
            find(d, 'NetworkPolicy', 'patron').spec.egress.push({});
        },
    ],
    [
        'a password in the ConfigMap',
        'belongs in a Secret',
        d => {
            config(d).data.PATRON_RDKAFKA_SASL_PASSWORD = 'hunter2';
        },
    ],
    [
        'Redis URL or seed list as a literal',
        d => `${redisVar(d, 'patron-api')} must come from a Secret`,
        d => {
            const v = redisVar(d, 'patron-api');
            const e = cont(d, 'patron-api').env.find(x => x.name === v);
            delete e.valueFrom;
            e.value = v === 'PATRON_REDIS_URL' ? 'redis://:pw@redis:6379' : ':pw@redis-0:6379';
        },
    ],
    [
        'both Redis variables set',
        'sets both PATRON_REDIS_URL and PATRON_REDIS_CLUSTER',
        d => {
            // the other one from the same Secret: only the pair is wrong
            const env = cont(d, 'patron-trigger').env;
            const v = redisVar(d, 'patron-trigger');
            const ref = env.find(x => x.name === v).valueFrom.secretKeyRef;
            const [name, key] =
                v === 'PATRON_REDIS_URL'
                    ? ['PATRON_REDIS_CLUSTER', 'cluster']
                    : ['PATRON_REDIS_URL', 'url'];
            env.push({ name, valueFrom: { secretKeyRef: { name: ref.name, key } } });
        },
    ],
    [
        'no Redis variable',
        'neither PATRON_REDIS_URL nor PATRON_REDIS_CLUSTER',
        d => {
            const c = cont(d, 'patron-ingest');
            c.env = c.env.filter(x => !REDIS_VARS.includes(x.name));
        },
    ],
    [
        'a typo in a variable',
        'not a Patron variable',
        d => {
            config(d).data.PATRON_LOG_LEVLE = 'x';
        },
    ],
    [
        'replicas fight the autoscaler',
        'spec.replicas',
        d => {
            find(d, 'Deployment', 'patron-api').spec.replicas = 3;
        },
    ],
    [
        'no topology spread',
        'topologySpreadConstraints',
        d => {
            delete find(d, 'Deployment', 'patron-api').spec.template.spec.topologySpreadConstraints;
        },
    ],
    [
        'service links on',
        'enableServiceLinks',
        d => {
            find(d, 'Deployment', 'patron-ingest').spec.template.spec.enableServiceLinks = true;
        },
    ],
    [
        'image latest',
        'latest',
        d => {
            cont(d, 'patron-api').image = 'registry.example.com/patron:latest';
        },
    ],
    [
        'an alert on a metric the code lacks',
        'no service exports',
        d => {
            find(d, 'PrometheusRule').spec.groups[0].rules[0].expr = 'patron_nonesuch_total > 0';
        },
    ],
    [
        'namespace not restricted',
        'restricted',
        d => {
            find(d, 'Namespace').metadata.labels['pod-security.kubernetes.io/enforce'] = 'baseline';
        },
    ],
];

function selfTest(name, docs, known) {
    let passed = 0,
        failed = 0;
    const base = checkOverlay(name, clone(docs), known);
    if (base.length) {
        console.error(
            `self-test: the unbroken ${name} overlay has findings:\n  ${base.join('\n  ')}`,
        );
        return { passed, failed: 1 };
    }
    for (const [what, wanted, breakIt] of BREAKS) {
        const d = clone(docs);
        const want = typeof wanted === 'function' ? wanted(d) : wanted;
        breakIt(d);
        const f = checkOverlay(name, d, known);
        if (f.some(x => x.includes(want))) {
            passed++;
            if (process.env.PATRON_K8S_VERBOSE)
                console.log(`caught "${what}":\n  ${f.join('\n  ')}`);
        } else {
            failed++;
            console.error(
                `self-test: "${what}" not caught (wanted "${want}"); findings: ${JSON.stringify(f)}`,
            );
        }
    }
    return { passed, failed };
}

// --------------------------------------------------------------------- main --

function load(file) {
    const docs = [];
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
        if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
        const js = doc.toJS();
        if (js) docs.push(js);
    }
    return docs;
}

function main(argv) {
    if (argv[0] === '--monitoring' || argv[0] === '--monitoring-self-test')
        return monitoring.main(argv);
    const self = argv[0] === '--self-test';
    const overlays = (self ? argv.slice(1) : argv).map(a => {
        const i = a.indexOf('=');
        if (i <= 0) throw new Error(`expected NAME=FILE, got ${a}`);
        return [a.slice(0, i), load(a.slice(i + 1))];
    });
    if (!overlays.length) throw new Error('usage: check.js [--self-test] NAME=FILE...');
    const known = knownVars();
    if (self) {
        const [name, docs] = overlays[0];
        const { passed, failed } = selfTest(name, docs, known);
        console.log(`self-test (${name}): ${passed} passed, ${failed} failed`);
        return failed ? 1 : 0;
    }
    let n = 0,
        objects = 0;
    for (const [name, docs] of overlays) {
        const f = checkOverlay(name, docs, known);
        for (const x of f) console.error(x);
        n += f.length;
        objects += docs.length;
        console.log(`${name}: ${docs.length} objects, ${f.length} findings`);
    }
    return n ? 1 : 0;
}

try {
    process.exitCode = main(process.argv.slice(2));
} catch (e) {
    console.error(`check.js: ${e.message}`);
    process.exitCode = 2;
}

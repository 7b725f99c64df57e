{{/*
Outrigger named templates.

Every template here takes one argument, a dict:
  root:   the top-level context ($ in the calling template), for .Release and .Chart
  values: the Outrigger values block; defaults to root.Values

So this chart's own templates call them with (dict "root" $ "values" .Values), and an app
chart that lists this chart as a dependency (named "outrigger") calls them with
(dict "root" $ "values" .Values.outrigger). The names of the ConfigMap and the Secret the
subchart renders depend only on the release name and nameOverride/fullnameOverride, so
they resolve the same from either side.

Library templates (see README.md, "Using the chart as a library"):
  outrigger.sidecarContainer   the sidecar as one list item, for initContainers (native) or containers (classic)
  outrigger.initContainers     the sidecar when sidecar.native is true, else nothing
  outrigger.containers         the sidecar when sidecar.native is false, else nothing
  outrigger.configVolume       the ConfigMap volume, as one list item (mounted as a directory, never subPath),
                               and an emptyDir per dead-letter journal directory (outrigger.deadLetterDirs)
  outrigger.probes             startupProbe, livenessProbe and readinessProbe on the status port
  outrigger.configYaml         the config as YAML, with YAML 1.1's "true" keys given back as `on`
  outrigger.terminationGracePeriodSeconds   derived from the drain settings
  outrigger.scrapeAnnotations  prometheus.io/* pod annotations
*/}}

{{/* The image tag used when image.tag is empty. Keep equal to appVersion in Chart.yaml (a test checks). */}}
{{- define "outrigger.defaultTag" -}}
0.1.0
{{- end -}}

{{- define "outrigger.name" -}}
{{- $v := default .root.Values .values -}}
{{- default "outrigger" $v.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "outrigger.fullname" -}}
{{- $v := default .root.Values .values -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "outrigger" $v.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "outrigger.chart" -}}
{{- printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "outrigger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "outrigger.labels" -}}
helm.sh/chart: {{ include "outrigger.chart" . }}
{{ include "outrigger.selectorLabels" . }}
app.kubernetes.io/version: {{ include "outrigger.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "outrigger.tag" -}}
{{- $v := default .root.Values .values -}}
{{- default (include "outrigger.defaultTag" .) $v.image.tag -}}
{{- end -}}

{{- define "outrigger.image" -}}
{{- $v := default .root.Values .values -}}
{{- if $v.image.digest -}}
{{- printf "%s@%s" $v.image.repository $v.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $v.image.repository (include "outrigger.tag" .) -}}
{{- end -}}
{{- end -}}

{{- define "outrigger.configMapName" -}}
{{- $v := default .root.Values .values -}}
{{- default (printf "%s-config" (include "outrigger.fullname" .)) $v.existingConfigMap -}}
{{- end -}}

{{- define "outrigger.secretName" -}}
{{- $v := default .root.Values .values -}}
{{- default (printf "%s-admin" (include "outrigger.fullname" .)) $v.adminToken.existingSecret -}}
{{- end -}}

{{- define "outrigger.serviceAccountName" -}}
{{- $v := default .root.Values .values -}}
{{- if $v.serviceAccount.create -}}
{{- default (include "outrigger.fullname" .) $v.serviceAccount.name -}}
{{- else -}}
{{- default "default" $v.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Whole seconds, rounded up, of an Outrigger duration: "250ms", "5s", "1.5m", "1h", or a
number of milliseconds (the same forms the config accepts).
*/}}
{{- define "outrigger.durationSeconds" -}}
{{- $d := toString . | trim -}}
{{- $ms := 0.0 -}}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $d -}}
{{- $ms = float64 $d -}}
{{- else if regexMatch "^[0-9]+(\\.[0-9]+)?ms$" $d -}}
{{- $ms = float64 (trimSuffix "ms" $d) -}}
{{- else if regexMatch "^[0-9]+(\\.[0-9]+)?s$" $d -}}
{{- $ms = mulf (trimSuffix "s" $d) 1000 -}}
{{- else if regexMatch "^[0-9]+(\\.[0-9]+)?m$" $d -}}
{{- $ms = mulf (trimSuffix "m" $d) 60000 -}}
{{- else if regexMatch "^[0-9]+(\\.[0-9]+)?h$" $d -}}
{{- $ms = mulf (trimSuffix "h" $d) 3600000 -}}
{{- else -}}
{{- fail (printf "outrigger: %q is not a duration like \"250ms\", \"5s\" or \"1m\"" $d) -}}
{{- end -}}
{{- divf $ms 1000 | ceil | int -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the explicit value, or
  (classic mode: sidecar.preStopSleepSeconds) + drain.delay + drain.timeout + terminationGraceMarginSeconds.
On SIGTERM the proxy fails /readyz, keeps serving for drain.delay, stops accepting, then
waits up to drain.timeout for in-flight requests before it exits.
*/}}
{{- define "outrigger.terminationGracePeriodSeconds" -}}
{{- $v := default .root.Values .values -}}
{{- if not (kindIs "invalid" $v.terminationGracePeriodSeconds) -}}
{{- $v.terminationGracePeriodSeconds | int -}}
{{- else -}}
{{- $drain := dig "drain" (dict) (default (dict) $v.config) -}}
{{- $delay := "5s" -}}
{{- if hasKey $drain "delay" }}{{ $delay = $drain.delay }}{{ end -}}
{{- $timeout := "25s" -}}
{{- if hasKey $drain "timeout" }}{{ $timeout = $drain.timeout }}{{ end -}}
{{- $total := add (include "outrigger.durationSeconds" $delay) (include "outrigger.durationSeconds" $timeout) $v.terminationGraceMarginSeconds -}}
{{- if not $v.sidecar.native -}}
{{- $total = add $total $v.sidecar.preStopSleepSeconds -}}
{{- end -}}
{{- $total -}}
{{- end -}}
{{- end -}}

{{/*
Fails the render when a listen port in .config differs from sidecar.ports, or when the
probes are on but the config has no status listener for them.
*/}}
{{- define "outrigger.validate" -}}
{{- $v := default .root.Values .values -}}
{{- $c := default (dict) $v.config -}}
{{- $listen := dict "proxy" (default "0.0.0.0:15001" $c.listen) "admin" (dig "admin" "listen" "127.0.0.1:15000" $c) "metrics" (dig "metrics" "listen" "0.0.0.0:15090" $c) -}}
{{- $status := dig "status" "listen" "" $c -}}
{{- if $status }}{{ $_ := set $listen "status" $status }}{{ end -}}
{{- range $which, $addr := $listen -}}
{{- $want := get $v.sidecar.ports $which | int -}}
{{- if ne (regexFind "[0-9]+$" $addr | int) $want -}}
{{- fail (printf "outrigger: the %s listen address %q in config does not match sidecar.ports.%s (%d)" $which $addr $which $want) -}}
{{- end -}}
{{- end -}}
{{- $p := $v.sidecar.probes -}}
{{- if and (not $status) (not $v.existingConfigMap) (or $p.startup.enabled $p.liveness.enabled $p.readiness.enabled) -}}
{{- fail "outrigger: the probes need config.status.listen (e.g. 0.0.0.0:15021); set it, or turn the probes off" -}}
{{- end -}}
{{- end -}}

{{/*
A retry, fallback or deadLetter block with YAML 1.1's "true" key (what an unquoted `on:`
becomes when Helm reads values) given back its `on` key. Takes the block (a dict, or
nothing); mutates it. The Outrigger config has no key named "true", so the mapping never
changes a valid config.
*/}}
{{- define "outrigger.onKey" -}}
{{- if kindIs "map" . -}}
{{- if hasKey . "true" -}}
{{- if hasKey . "on" -}}
{{- fail "outrigger: a retry, fallback or deadLetter block sets both `on` and `\"on\"`; keep one" -}}
{{- end -}}
{{- $_ := set . "on" (get . "true") -}}
{{- $_ := unset . "true" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Outrigger config as YAML, from a copy of .config with every retry/fallback/deadLetter `on` (defaults, presets, routes) restored. */}}
{{- define "outrigger.configYaml" -}}
{{- $v := default .root.Values .values -}}
{{- $c := deepCopy (default (dict) $v.config) -}}
{{- with $c.defaults -}}
{{- include "outrigger.onKey" .retry -}}
{{- include "outrigger.onKey" .fallback -}}
{{- include "outrigger.onKey" .deadLetter -}}
{{- end -}}
{{- range $_, $preset := $c.presets -}}
{{- if kindIs "map" $preset -}}
{{- include "outrigger.onKey" $preset.retry -}}
{{- include "outrigger.onKey" $preset.fallback -}}
{{- include "outrigger.onKey" $preset.deadLetter -}}
{{- end -}}
{{- end -}}
{{- range $c.routes -}}
{{- include "outrigger.onKey" .retry -}}
{{- include "outrigger.onKey" .fallback -}}
{{- include "outrigger.onKey" .deadLetter -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "outrigger.scrapeAnnotations" -}}
{{- $v := default .root.Values .values -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ $v.sidecar.ports.metrics | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* Probes on the read-only status port: liveness on /livez, readiness (and startup) on /readyz. */}}
{{- define "outrigger.probes" -}}
{{- $v := default .root.Values .values -}}
{{- $p := $v.sidecar.probes -}}
{{- if $p.startup.enabled }}
startupProbe:
  httpGet:
    path: /readyz
    port: {{ $v.sidecar.ports.status }}
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
{{- end }}
{{- if $p.liveness.enabled }}
livenessProbe:
  httpGet:
    path: /livez
    port: {{ $v.sidecar.ports.status }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end }}
{{- if $p.readiness.enabled }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ $v.sidecar.ports.status }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}
{{- end -}}

{{/* The ConfigMap volume, as one list item. Mount it as a directory: subPath mounts never update. */}}
{{- define "outrigger.configVolume" -}}
- name: outrigger-config
  configMap:
    name: {{ include "outrigger.configMapName" . }}
{{- /* The dead-letter journals: an emptyDir lasts as long as the pod, not across pods. */}}
{{- range $dir, $name := include "outrigger.deadLetterDirs" . | fromJson }}
- name: {{ $name }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/*
The dead-letter journal directories, as JSON: {"<dir>": "<volume name>"} with one key per
distinct directory that a route with deadLetter enabled writes to; {} when none does.

Each route's deadLetter.enabled and deadLetter.dir are merged as the proxy merges them, key
by key: the built-in default (/var/lib/outrigger/dead-letters), then `defaults`, then each
preset of the route's `use` list (a preset's own `use` list before it, each preset once),
then the route's own keys. So a route with its own dir gets its own mount, and the
`defaults` dir is mounted only if some enabled route still uses it.

The dir must be absolute: the proxy resolves a relative dir against the config file's
directory, /etc/outrigger, which is the read-only ConfigMap volume; a journal cannot be
written there, and Kubernetes cannot create a mount point inside a ConfigMap volume. The
render fails on a relative dir, or one at or under /etc/outrigger, of an enabled route.

The volume name is "outrigger-dl-" and the first 10 hex digits of the dir's SHA-256: a
valid DNS label of 23 characters, the same for a dir whatever the other routes are.
*/}}
{{- define "outrigger.deadLetterDirs" -}}
{{- $v := default .root.Values .values -}}
{{- $c := default (dict) $v.config -}}
{{- $presets := $c.presets | default dict -}}
{{- $dirs := dict -}}
{{- range $i, $r := ($c.routes | default list) -}}
{{- if kindIs "map" $r -}}
{{- $eff := dict "enabled" false "dir" "/var/lib/outrigger/dead-letters" "from" "the built-in default" -}}
{{- include "outrigger.deadLetterLayer" (dict "eff" $eff "block" (dig "deadLetter" dict ($c.defaults | default dict)) "at" "config.defaults") -}}
{{- $order := dict "list" list "seen" dict -}}
{{- range ($r.use | default list) -}}
{{- include "outrigger.presetOrder" (dict "name" . "presets" $presets "state" $order "stack" dict) -}}
{{- end -}}
{{- range $order.list -}}
{{- $p := get $presets . -}}
{{- if kindIs "map" $p -}}
{{- include "outrigger.deadLetterLayer" (dict "eff" $eff "block" $p.deadLetter "at" (printf "config.presets.%s" .)) -}}
{{- end -}}
{{- end -}}
{{- include "outrigger.deadLetterLayer" (dict "eff" $eff "block" $r.deadLetter "at" (printf "config.routes[%d]" $i)) -}}
{{- if $eff.enabled -}}
{{- $dir := toString $eff.dir -}}
{{- $route := printf "config.routes[%d] (%s)" $i (toString (default "?" $r.name)) -}}
{{- if not (isAbs $dir) -}}
{{- fail (printf "outrigger: %s enables deadLetter with the relative dir %q (from %s). The proxy would resolve it against the config file's directory, /etc/outrigger, the read-only ConfigMap volume, where the chart cannot mount a writable emptyDir; use an absolute path such as /var/lib/outrigger/dead-letters" $route $dir $eff.from) -}}
{{- end -}}
{{- $dir = clean $dir -}}
{{- if or (eq $dir "/") (eq $dir "/etc/outrigger") (hasPrefix "/etc/outrigger/" $dir) -}}
{{- fail (printf "outrigger: %s writes its dead-letter journal to %q (from %s); the chart mounts an emptyDir there, which cannot be / or at or under /etc/outrigger (the ConfigMap volume); use a directory of its own such as /var/lib/outrigger/dead-letters" $route $dir $eff.from) -}}
{{- end -}}
{{- $_ := set $dirs $dir (printf "outrigger-dl-%s" (sha256sum $dir | trunc 10)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $dirs -}}
{{- end -}}

{{/* One layer of a route's deadLetter: the enabled and dir keys it sets override those before. Takes dict "eff" "block" "at"; mutates eff. */}}
{{- define "outrigger.deadLetterLayer" -}}
{{- if kindIs "map" .block -}}
{{- if and (hasKey .block "enabled") (not (kindIs "invalid" .block.enabled)) -}}
{{- $_ := set .eff "enabled" .block.enabled -}}
{{- end -}}
{{- if and (hasKey .block "dir") (not (kindIs "invalid" .block.dir)) -}}
{{- $_ := set .eff "dir" .block.dir -}}
{{- $_ := set .eff "from" (printf "%s.deadLetter.dir" .at) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Appends a preset to state.list after the presets it uses (depth first, each once): the order
the proxy applies a route's presets in. Takes dict "name" "presets" "state" "stack"; a cycle
(refused by the proxy) is cut where it closes. Built-in presets set no deadLetter keys.
*/}}
{{- define "outrigger.presetOrder" -}}
{{- $name := toString .name -}}
{{- if not (or (hasKey .state.seen $name) (hasKey .stack $name)) -}}
{{- $p := get .presets $name -}}
{{- if kindIs "map" $p -}}
{{- $_ := set .stack $name true -}}
{{- range ($p.use | default list) -}}
{{- include "outrigger.presetOrder" (dict "name" . "presets" $.presets "state" $.state "stack" $.stack) -}}
{{- end -}}
{{- $_ := unset .stack $name -}}
{{- end -}}
{{- $_ := set .state.seen $name true -}}
{{- $_ := set .state "list" (append .state.list $name) -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar container, as one list item. With sidecar.native it carries
restartPolicy: Always and belongs under initContainers; otherwise it is a classic
container with a preStop sleep, under containers.
*/}}
{{- define "outrigger.sidecarContainer" -}}
{{- include "outrigger.validate" . -}}
{{- $v := default .root.Values .values -}}
- name: {{ $v.sidecar.name }}
  image: {{ include "outrigger.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: OUTRIGGER_CONFIG
      value: /etc/outrigger/outrigger.yaml
    {{- if or $v.adminToken.existingSecret $v.adminToken.value }}
    - name: OUTRIGGER_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "outrigger.secretName" . }}
          key: {{ $v.adminToken.key }}
    {{- end }}
    {{- with $v.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: outrig-proxy
      containerPort: {{ $v.sidecar.ports.proxy }}
      protocol: TCP
    - name: outrig-status
      containerPort: {{ $v.sidecar.ports.status }}
      protocol: TCP
    - name: outrig-metrics
      containerPort: {{ $v.sidecar.ports.metrics }}
      protocol: TCP
  {{- include "outrigger.probes" . | trim | nindent 2 }}
  {{- if not $v.sidecar.native }}
  lifecycle:
    preStop:
      {{- if eq $v.sidecar.preStop "sleep" }}
      sleep:
        seconds: {{ $v.sidecar.preStopSleepSeconds }}
      {{- else }}
      {{- /* The image has no shell or sleep binary; node itself waits. */}}
      exec:
        command: ["node", "-e", "setTimeout(() => {}, {{ mul $v.sidecar.preStopSleepSeconds 1000 }})"]
      {{- end }}
  {{- end }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: outrigger-config
      mountPath: /etc/outrigger
      readOnly: true
    {{- range $dir, $name := include "outrigger.deadLetterDirs" . | fromJson }}
    - name: {{ $name }}
      mountPath: {{ $dir }}
    {{- end }}
{{- end -}}

{{- define "outrigger.initContainers" -}}
{{- $v := default .root.Values .values -}}
{{- if $v.sidecar.native -}}
{{- include "outrigger.sidecarContainer" . -}}
{{- end -}}
{{- end -}}

{{- define "outrigger.containers" -}}
{{- $v := default .root.Values .values -}}
{{- if not $v.sidecar.native -}}
{{- include "outrigger.sidecarContainer" . -}}
{{- end -}}
{{- end -}}

{{/*
Names are fixed, not derived from the release name: the injector finds its
webhook configuration, Service, TLS Secret and Lease by these names
(webhook/settings.py defaults), and RBAC resourceNames point at them.
*/}}
{{- define "spi.name" -}}stellar-peer-injector{{- end -}}

{{/* The labels of every object, as the kustomize base sets them. */}}
{{- define "spi.labels" -}}
{{- $labels := dict "app.kubernetes.io/name" "stellar-peer-injector" "app.kubernetes.io/part-of" "stellar-peer-injector" -}}
{{- toYaml (merge $labels .Values.commonLabels) -}}
{{- end -}}

{{/* The metadata every object gets: name, labels and common annotations. */}}
{{- define "spi.metadata" -}}
{{- $root := index . 0 -}}
name: {{ index . 1 }}
{{- if index . 2 }}
namespace: {{ $root.Release.Namespace }}
{{- end }}
labels:
{{- include "spi.labels" $root | nindent 2 }}
{{- with $root.Values.commonAnnotations }}
annotations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The injector pods' selector (and template) labels. */}}
{{- define "spi.selectorLabels" -}}
app.kubernetes.io/name: stellar-peer-injector
app.kubernetes.io/component: injector
{{- end -}}

{{/* The ServiceAccount's username, as the guard policies match it. */}}
{{- define "spi.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:stellar-peer-injector
{{- end -}}

{{/*
The namespaceSelector value as the label selector string the injector's
--namespace-selector takes (webhook/service.py parses it back).
*/}}
{{- define "spi.namespaceSelectorString" -}}
{{- $terms := list -}}
{{- range $key, $value := .Values.namespaceSelector.matchLabels -}}
{{- $terms = append $terms (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- range .Values.namespaceSelector.matchExpressions -}}
{{- if eq .operator "In" -}}
{{- $terms = append $terms (printf "%s in (%s)" .key (join "," (sortAlpha .values))) -}}
{{- else if eq .operator "NotIn" -}}
{{- $terms = append $terms (printf "%s notin (%s)" .key (join "," (sortAlpha .values))) -}}
{{- else if eq .operator "Exists" -}}
{{- $terms = append $terms .key -}}
{{- else -}}
{{- $terms = append $terms (printf "!%s" .key) -}}
{{- end -}}
{{- end -}}
{{- join "," $terms -}}
{{- end -}}

{{/*
The injector's settings from values, as STELLAR_INJECTOR_* variables. A null
value is left out so the injector's own default applies (and the defaults
render exactly what manifests/ does).
*/}}
{{- define "spi.settingsEnv" -}}
{{- $v := .Values -}}
{{- $strings := dict
  "LOG_LEVEL" $v.logLevel
  "IMAGE_PATTERN" $v.imagePattern
  "LEASE_NAME" $v.leaderElection.leaseName
  "DEFAULT_NETWORK" $v.defaultNetwork
  "CLUSTER_NAME" $v.clusterName
-}}
{{- $ints := dict
  "MAX_BODY_BYTES" $v.webhook.maxBodyBytes
  "HOOK_TIMEOUT_SECONDS" $v.hook.timeoutSeconds
  "WATCH_TIMEOUT_SECONDS" $v.watcher.watchTimeoutSeconds
  "RELOAD_CONCURRENCY" $v.reload.concurrency
  "RELOAD_RETRIES" $v.reload.retries
-}}
{{- $floats := dict
  "DEBOUNCE_SECONDS" $v.watcher.debounceSeconds
  "RELOAD_TIMEOUT_SECONDS" $v.reload.timeoutSeconds
  "LEASE_DURATION_SECONDS" $v.leaderElection.leaseDurationSeconds
  "LEASE_RENEW_SECONDS" $v.leaderElection.leaseRenewSeconds
  "LINK_STALE_SECONDS" $v.linkStaleSeconds
-}}
{{- $bools := dict
  "ENABLE_WATCHER" $v.watcher.enabled
  "EVICT_UNINJECTED" $v.watcher.evictUninjected
  "LEADER_ELECTION" $v.leaderElection.enabled
-}}
{{- $env := dict -}}
{{- range $name, $value := $strings }}{{ if not (kindIs "invalid" $value) }}{{ $_ := set $env $name (toString $value) }}{{ end }}{{ end -}}
{{- range $name, $value := $ints }}{{ if not (kindIs "invalid" $value) }}{{ $_ := set $env $name (toString (int64 $value)) }}{{ end }}{{ end -}}
{{- range $name, $value := $floats }}{{ if not (kindIs "invalid" $value) }}{{ $_ := set $env $name (toString (float64 $value)) }}{{ end }}{{ end -}}
{{- range $name, $value := $bools }}{{ if not (kindIs "invalid" $value) }}{{ $_ := set $env $name (ternary "true" "false" $value) }}{{ end }}{{ end -}}
{{- with $v.staticPeers }}{{ $_ := set $env "STATIC_PEERS" (join "," .) }}{{ end -}}
{{- $selector := include "spi.namespaceSelectorString" . -}}
{{- if ne $selector "stellar.org/peer-injection=enabled" }}{{ $_ := set $env "NAMESPACE_SELECTOR" $selector }}{{ end -}}
{{- if ne $v.reload.mode "http" }}{{ $_ := set $env "RELOAD_MODE" $v.reload.mode }}{{ end -}}
{{- if ne $v.admissionMode "auto" }}{{ $_ := set $env "ADMISSION_MODE" $v.admissionMode }}{{ end -}}
{{- if eq $v.certificates.mode "cert-manager" }}{{ $_ := set $env "CERT_MODE" "external" }}{{ end -}}
{{- if and (not (kindIs "invalid" $v.leaderElection.leaseDurationSeconds)) (not (kindIs "invalid" $v.leaderElection.leaseRenewSeconds)) -}}
{{- if ge (float64 $v.leaderElection.leaseRenewSeconds) (float64 $v.leaderElection.leaseDurationSeconds) -}}
{{- fail "leaderElection.leaseRenewSeconds must be shorter than leaderElection.leaseDurationSeconds" -}}
{{- end -}}
{{- end -}}
{{- range $name := keys $env | sortAlpha }}
- name: STELLAR_INJECTOR_{{ $name }}
  value: {{ get $env $name | quote }}
{{- end }}
{{- end -}}

{{/* The release's base name, at most 63 characters. */}}
{{- define "dray.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "dray.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of the control plane. */}}
{{- define "dray.controlPlane.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "dray.controlPlane.name" -}}
{{- printf "%s-control-plane" (include "dray.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding DRAY_DATABASE_URL and DRAY_ADMIN_TOKEN. */}}
{{- define "dray.controlPlane.secretName" -}}
{{- default (include "dray.controlPlane.name" .) .Values.controlPlane.existingSecret -}}
{{- end -}}

{{- define "dray.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The pod security context of every Dray pod: the images' unprivileged user dray (10001). */}}
{{- define "dray.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "dray.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Fails the render when the control plane would refuse to start anyway. */}}
{{- define "dray.validate" -}}
{{- $cp := .Values.controlPlane -}}
{{- if and (not $cp.tls.enabled) (not $cp.allowInsecureBind) -}}
{{- fail "controlPlane: the control plane listens beyond loopback, so it needs TLS: set controlPlane.tls.enabled=true with controlPlane.tls.secretName, or controlPlane.allowInsecureBind=true on a trusted network (see deploy/README.md)" -}}
{{- end -}}
{{- if and $cp.tls.enabled (not $cp.tls.secretName) -}}
{{- fail "controlPlane.tls.secretName is required when controlPlane.tls.enabled is true" -}}
{{- end -}}
{{- if not $cp.existingSecret -}}
{{- if not $cp.database.url -}}
{{- fail "controlPlane.database.url (postgres://…) or controlPlane.existingSecret is required" -}}
{{- end -}}
{{- if not (regexMatch "^postgres(ql)?://" $cp.database.url) -}}
{{- fail "controlPlane.database.url must be a postgres:// or postgresql:// URL" -}}
{{- end -}}
{{- if lt (len $cp.adminToken) 24 -}}
{{- fail "controlPlane.adminToken must be at least 24 characters (or use controlPlane.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- range .Values.agents -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .name)) -}}
{{- fail (printf "agents: name %q must be a DNS label (lower-case letters, digits, -)" (toString .name)) -}}
{{- end -}}
{{- if and (not .existingSecret) (not .databaseUrl) -}}
{{- fail (printf "agents[%s]: databaseUrl or existingSecret is required" .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

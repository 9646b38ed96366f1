{{/* Names and labels, as `helm create` lays them out. */}}
{{- define "tc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
An env var value from a values number or string. Helm reads values as JSON, so every number is a
float64 and would print 1048576 as "1.048576e+06", which the service cannot parse as an int.
*/}}
{{- define "tc.envValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Ports come from the service's own settings, so probes and Services always agree with it. */}}
{{- define "tc.httpPort" -}}{{ include "tc.envValue" (.Values.config.http_port | default 8000) }}{{- end }}
{{- define "tc.grpcPort" -}}{{ include "tc.envValue" (.Values.config.grpc_port | default 50051) }}{{- end }}

{{/* Seconds from SIGTERM to SIGKILL: preStop sleep + the service's drain time + a margin. */}}
{{- define "tc.terminationGrace" -}}
{{- $drain := int (ceil (.Values.config.shutdown_grace_s | default 25)) }}
{{- $needed := add .Values.lifecycle.preStopSleepSeconds $drain }}
{{- $grace := .Values.terminationGracePeriodSeconds | default (add $needed 10) | int }}
{{- if le $grace (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds=%d must exceed preStopSleepSeconds + config.shutdown_grace_s = %d" $grace (int $needed)) }}
{{- end }}
{{- $grace }}
{{- end }}

{{- define "tc.pvcName" -}}
{{- .Values.models.pvc.existingClaim | default (printf "%s-models" (include "tc.fullname" .)) }}
{{- end }}

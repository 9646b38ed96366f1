{{/* Names and labels, laid out as in the service chart (solution/helm). */}}
{{- define "at.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "autotests" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-autotests" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The participant name as a label value: at most 63 of [A-Za-z0-9-_.], starting and ending
alphanumeric (may be empty). Runs of other characters become "-"; the raw name is an annotation.
*/}}
{{- define "at.participantLabel" -}}
{{- regexReplaceAll "[^A-Za-z0-9_.-]+" (toString .Values.PARTICIPANT_NAME) "-" | trunc 63 | trimAll "-_." }}
{{- end }}

{{- define "at.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tweet-classifier
app.kubernetes.io/component: autotests
tweet-classifier/participant: {{ include "at.participantLabel" . | quote }}
{{- end }}

{{/*
Seconds before Kubernetes stops the Job: the explicit value, else the reference scenarios
(~8.5 min = 510 s) stretched by scale, plus 600 s for image pull, the wait for the service and
the report. scale may be a string: `--set scale=0.5` does not parse floats.
*/}}
{{- define "at.activeDeadline" -}}
{{- if .Values.activeDeadlineSeconds }}
{{- .Values.activeDeadlineSeconds | int }}
{{- else }}
{{- add (ceil (mulf 510 (float64 .Values.scale))) 600 }}
{{- end }}
{{- end }}

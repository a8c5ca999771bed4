{{/* The chart's name, or nameOverride. */}}
{{- define "lanai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name for every object; the release name alone when it already contains the chart's. */}}
{{- define "lanai.fullname" -}}
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

{{- define "lanai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lanai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lanai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lanai.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lanai.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether lanai.toml is rendered: any [server] key or any channel to follow. */}}
{{- define "lanai.hasConfig" -}}
{{- if or .Values.config.server .Values.follow }}true{{ end }}
{{- end }}

{{/* The store's volume source: an emptyDir, a node's directory (DaemonSet), or a claim. */}}
{{- define "lanai.storeVolume" -}}
{{- $p := .Values.persistence }}
{{- if not $p.enabled }}
emptyDir: {}
{{- else if $p.existingClaim }}
persistentVolumeClaim:
  claimName: {{ $p.existingClaim }}
{{- else if eq .Values.kind "DaemonSet" }}
hostPath:
  path: {{ required "persistence.daemonSetHostPath is needed for a DaemonSet without existingClaim" $p.daemonSetHostPath }}
  type: DirectoryOrCreate
{{- else }}
persistentVolumeClaim:
  claimName: {{ include "lanai.fullname" . }}
{{- end }}
{{- end }}

{{/* The chart creates a claim for a Deployment with persistence and no existing claim. */}}
{{- define "lanai.createClaim" -}}
{{- $p := .Values.persistence }}
{{- if and $p.enabled (not $p.existingClaim) (ne .Values.kind "DaemonSet") }}true{{ end }}
{{- end }}

{{/* Names, labels and the values the chart refuses to run without. */}}

{{- define "matcha.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every pod selector uses; each template adds app.kubernetes.io/component itself. */}}
{{- define "matcha.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "matcha.labels" -}}
{{ include "matcha.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Secret holding POSTGRES_PASSWORD, QDRANT_API_KEY and MATCHA_DECISION_KEY. */}}
{{- define "matcha.secretName" -}}
{{- required "existingSecret is required: create the Secret first (deploy/secrets.sh && kubectl create secret generic matcha-secrets --from-env-file=deploy/.env), then pass --set existingSecret=matcha-secrets" .Values.existingSecret -}}
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag. Argument: an image mapping. */}}
{{- define "matcha.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (required "an image needs a tag or a digest" .tag) -}}
{{- end -}}
{{- end -}}

{{- define "matcha.image" -}}
{{- $repository := required "image.repository is required: build deploy/Dockerfile, push it to your registry and pass --set image.repository=REGISTRY/matcha (and image.digest or image.tag)" .Values.image.repository -}}
{{- include "matcha.imageRef" (dict "repository" $repository "tag" .Values.image.tag "digest" .Values.image.digest) -}}
{{- end -}}

{{/* Environment of the review server and the worker (secrets come from the existing Secret). */}}
{{- define "matcha.env" -}}
- name: MATCHA_HOME
  value: /var/lib/matcha
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "matcha.secretName" . }}, key: POSTGRES_PASSWORD}
- name: MATCHA_DATABASE_URL
  value: {{ printf "postgresql://matcha:$(POSTGRES_PASSWORD)@%s-postgres:%v/matcha" (include "matcha.fullname" .) .Values.postgres.port | quote }}
- name: MATCHA_DECISION_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "matcha.secretName" . }}, key: MATCHA_DECISION_KEY}
- name: QDRANT_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "matcha.secretName" . }}, key: QDRANT_API_KEY}
- name: QDRANT_URL
  value: {{ printf "http://%s-qdrant:%v" (include "matcha.fullname" .) .Values.qdrant.port | quote }}
- name: OLLAMA_HOST
  value: {{ printf "http://%s-ollama:%v" (include "matcha.fullname" .) .Values.ollama.port | quote }}
- name: MATCHA_OLLAMA_MODEL
  value: {{ .Values.ollama.model | quote }}
{{- end -}}

{{/* Container hardening shared by every container of the chart. */}}
{{- define "matcha.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

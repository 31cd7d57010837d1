{{- define "mra.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meeting-rooms
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "user-service") */}}
{{- define "mra.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mra.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "mra.fullname" .)) -}}
{{- end -}}

{{- define "mra.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .service.name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "mra.postgresHost" -}}
{{- $db := index .root.Values.postgresql.databases .database -}}
{{- if $db.internal -}}
{{- printf "%s-postgres-%s" (include "mra.fullname" .root) .database -}}
{{- else -}}
{{- required (printf "postgresql.databases.%s.external.host is required when internal is false" .database) $db.external.host -}}
{{- end -}}
{{- end -}}

{{- define "mra.kafkaBootstrap" -}}
{{- if .Values.kafka.internal -}}
{{- printf "%s-kafka:9092" (include "mra.fullname" .) -}}
{{- else -}}
{{- required "kafka.externalBootstrapServers is required when kafka.internal is false" .Values.kafka.externalBootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The environment of one service, shared by its migration init container and the service itself. */}}
{{- define "mra.serviceEnv" -}}
{{- $root := .root -}}
{{- $svc := .service -}}
{{- $db := index $root.Values.postgresql.databases $svc.database -}}
{{- $fullname := include "mra.fullname" $root -}}
{{- /* Migrations (.migrate) run as the database owner and grant <user>_app DML rights on the tables;
      the service itself connects as <user>_app. */}}
{{- $user := ternary $db.external.user (printf "%s_app" $db.external.user) (default false .migrate) }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mra.secretName" $root }}
      key: {{ printf "%s_DB_%sPASSWORD" ($svc.database | upper) (ternary "" "APP_" (default false .migrate)) }}
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(DB_PASSWORD)@%s:%v/%s%s" $user (include "mra.postgresHost" (dict "root" $root "database" $svc.database)) (ternary 5432 $db.external.port $db.internal) $svc.database (ternary "" (printf "?sslmode=%s" $db.external.sslmode) $db.internal) | quote }}
{{- if .migrate }}
- name: DATABASE_APP_ROLE
  value: {{ printf "%s_app" $db.external.user | quote }}
- name: DATABASE_APP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mra.secretName" $root }}
      key: {{ printf "%s_DB_APP_PASSWORD" ($svc.database | upper) }}
{{- end }}
- name: PORT
  value: {{ $svc.port | quote }}
{{- if hasPrefix "SASL_" $root.Values.kafka.auth.protocol }}
{{- /* One Kafka principal per service, so the broker's ACLs can let each write only its own topic. */}}
- name: KAFKA_SASL_USERNAME
  value: {{ $svc.name | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mra.secretName" $root }}
      key: {{ printf "%s_KAFKA_PASSWORD" ($svc.database | upper) }}
{{- end }}
{{- if eq $svc.name "user-service" }}
- name: JWT_PRIVATE_KEY_FILE
  value: /var/run/secrets/meeting-rooms/jwt-signing.pem
- name: ADMIN_EMAIL
  valueFrom:
    secretKeyRef:
      name: {{ include "mra.secretName" $root }}
      key: ADMIN_EMAIL
- name: ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mra.secretName" $root }}
      key: ADMIN_PASSWORD
{{- else }}
- name: JWKS_URL
  value: {{ printf "http://%s-user-service:%v/api/auth/jwks" $fullname $root.Values.services.user.port | quote }}
{{- end }}
{{- if eq $svc.name "reservation-service" }}
- name: USER_SERVICE_URL
  value: {{ printf "http://%s-user-service:%v" $fullname $root.Values.services.user.port | quote }}
- name: ROOM_SERVICE_URL
  value: {{ printf "http://%s-room-service:%v" $fullname $root.Values.services.room.port | quote }}
- name: SMTP_HOST
  value: {{ $root.Values.config.smtp.host | quote }}
- name: SMTP_PORT
  value: {{ $root.Values.config.smtp.port | quote }}
- name: SMTP_FROM
  value: {{ $root.Values.config.smtp.from | quote }}
{{- $public := $root.Values.config.publicBaseUrl }}
{{- if and (not $public) $root.Values.ingress.enabled }}
{{- $public = printf "%s://%s" (ternary "https" "http" $root.Values.ingress.tls.enabled) $root.Values.ingress.host }}
{{- end }}
{{- if $public }}
- name: PUBLIC_BASE_URL
  value: {{ $public | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "mra.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

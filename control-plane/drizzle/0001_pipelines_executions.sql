CREATE TABLE "execution_batches" (
	"id" uuid PRIMARY KEY NOT NULL,
	"execution_id" uuid NOT NULL,
	"entity" text NOT NULL,
	"pass" integer DEFAULT 1 NOT NULL,
	"seq" integer NOT NULL,
	"batch_id" text NOT NULL,
	"state" text NOT NULL,
	"cursor_from" jsonb,
	"cursor_to" jsonb,
	"rows" integer DEFAULT 0 NOT NULL,
	"bytes" integer DEFAULT 0 NOT NULL,
	"created" integer DEFAULT 0 NOT NULL,
	"updated" integer DEFAULT 0 NOT NULL,
	"rejected" integer DEFAULT 0 NOT NULL,
	"reserved" integer DEFAULT 0 NOT NULL,
	"usage_month" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"duration_ms" integer,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "execution_entities" (
	"execution_id" uuid NOT NULL,
	"entity" text NOT NULL,
	"level" integer NOT NULL,
	"status" text NOT NULL,
	"pass" integer DEFAULT 1 NOT NULL,
	"total" bigint DEFAULT 0 NOT NULL,
	"processed" bigint DEFAULT 0 NOT NULL,
	"created" bigint DEFAULT 0 NOT NULL,
	"updated" bigint DEFAULT 0 NOT NULL,
	"skipped" bigint DEFAULT 0 NOT NULL,
	"failed" bigint DEFAULT 0 NOT NULL,
	"checkpoint" jsonb,
	"batches" integer DEFAULT 0 NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "execution_entities_execution_id_entity_pk" PRIMARY KEY("execution_id","entity")
);
--> statement-breakpoint
CREATE TABLE "execution_errors" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"execution_id" uuid NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"severity" text NOT NULL,
	"entity" text,
	"record_key" jsonb,
	"field" text,
	"code" text,
	"message" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "execution_events" (
	"execution_id" uuid NOT NULL,
	"seq" bigint NOT NULL,
	"channel" text NOT NULL,
	"payload" jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "execution_events_execution_id_seq_pk" PRIMARY KEY("execution_id","seq")
);
--> statement-breakpoint
CREATE TABLE "execution_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"execution_id" uuid NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"process_name" text NOT NULL,
	"state" text NOT NULL,
	"code" text NOT NULL,
	"description" text NOT NULL,
	"entity" text
);
--> statement-breakpoint
CREATE TABLE "executions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organisation_id" uuid NOT NULL,
	"pipeline_id" uuid NOT NULL,
	"pipeline_token" text NOT NULL,
	"status" text NOT NULL,
	"triggered_by" jsonb NOT NULL,
	"snapshot" jsonb NOT NULL,
	"reason_code" text,
	"reason" text,
	"confirmed" boolean DEFAULT false NOT NULL,
	"cancel_requested_at" timestamp with time zone,
	"cancelled_by" jsonb,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"event_seq" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "pipelines" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organisation_id" uuid NOT NULL,
	"name" text NOT NULL,
	"source_environment_id" uuid NOT NULL,
	"target_environment_id" uuid NOT NULL,
	"action" text NOT NULL,
	"write_strategy" text NOT NULL,
	"entities" jsonb NOT NULL,
	"batch_size" integer NOT NULL,
	"batch_bytes" integer NOT NULL,
	"max_retries_per_batch" integer NOT NULL,
	"stop_on_error" boolean NOT NULL,
	"entity_concurrency" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "target_entity_locks" (
	"environment_id" uuid NOT NULL,
	"entity" text NOT NULL,
	"execution_id" uuid NOT NULL,
	"acquired_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "target_entity_locks_environment_id_entity_pk" PRIMARY KEY("environment_id","entity")
);
--> statement-breakpoint
CREATE TABLE "usage" (
	"organisation_id" uuid NOT NULL,
	"month" text NOT NULL,
	"records" bigint DEFAULT 0 NOT NULL,
	"reserved" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "usage_organisation_id_month_pk" PRIMARY KEY("organisation_id","month")
);
--> statement-breakpoint
ALTER TABLE "execution_batches" ADD CONSTRAINT "execution_batches_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "execution_entities" ADD CONSTRAINT "execution_entities_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "execution_errors" ADD CONSTRAINT "execution_errors_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "execution_events" ADD CONSTRAINT "execution_events_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "execution_log" ADD CONSTRAINT "execution_log_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "executions" ADD CONSTRAINT "executions_organisation_id_organisations_id_fk" FOREIGN KEY ("organisation_id") REFERENCES "public"."organisations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "executions" ADD CONSTRAINT "executions_pipeline_id_pipelines_id_fk" FOREIGN KEY ("pipeline_id") REFERENCES "public"."pipelines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pipelines" ADD CONSTRAINT "pipelines_organisation_id_organisations_id_fk" FOREIGN KEY ("organisation_id") REFERENCES "public"."organisations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pipelines" ADD CONSTRAINT "pipelines_source_environment_id_environments_id_fk" FOREIGN KEY ("source_environment_id") REFERENCES "public"."environments"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pipelines" ADD CONSTRAINT "pipelines_target_environment_id_environments_id_fk" FOREIGN KEY ("target_environment_id") REFERENCES "public"."environments"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "target_entity_locks" ADD CONSTRAINT "target_entity_locks_environment_id_environments_id_fk" FOREIGN KEY ("environment_id") REFERENCES "public"."environments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "target_entity_locks" ADD CONSTRAINT "target_entity_locks_execution_id_executions_id_fk" FOREIGN KEY ("execution_id") REFERENCES "public"."executions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "usage" ADD CONSTRAINT "usage_organisation_id_organisations_id_fk" FOREIGN KEY ("organisation_id") REFERENCES "public"."organisations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "execution_batches_batch_id_idx" ON "execution_batches" USING btree ("batch_id");--> statement-breakpoint
CREATE INDEX "execution_batches_execution_idx" ON "execution_batches" USING btree ("execution_id","entity","pass","seq");--> statement-breakpoint
CREATE INDEX "execution_errors_execution_idx" ON "execution_errors" USING btree ("execution_id","id");--> statement-breakpoint
CREATE INDEX "execution_log_execution_idx" ON "execution_log" USING btree ("execution_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "executions_token_idx" ON "executions" USING btree ("pipeline_token");--> statement-breakpoint
CREATE INDEX "executions_pipeline_idx" ON "executions" USING btree ("pipeline_id","created_at");--> statement-breakpoint
CREATE INDEX "executions_claim_idx" ON "executions" USING btree ("status","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "executions_one_active_idx" ON "executions" USING btree ("pipeline_id") WHERE status in ('queued', 'in_progress');--> statement-breakpoint
CREATE UNIQUE INDEX "pipelines_org_name_idx" ON "pipelines" USING btree ("organisation_id","name");
CREATE TABLE "pipeline_files" (
	"pipeline_id" uuid NOT NULL,
	"file_id" text NOT NULL,
	"organisation_id" uuid NOT NULL,
	"filename" text NOT NULL,
	"format" text NOT NULL,
	"compressed" boolean DEFAULT false NOT NULL,
	"size_bytes" bigint NOT NULL,
	"state" text NOT NULL,
	"error" text,
	"upload_id" uuid,
	"execution_id" uuid,
	"pipeline_token" text NOT NULL,
	"publisher_token" text,
	"rows_loaded" bigint DEFAULT 0 NOT NULL,
	"rows_rejected" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "pipeline_files_pipeline_id_file_id_pk" PRIMARY KEY("pipeline_id","file_id")
);
--> statement-breakpoint
CREATE TABLE "staged_file_chunks" (
	"upload_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "staged_file_chunks_upload_id_seq_pk" PRIMARY KEY("upload_id","seq")
);
--> statement-breakpoint
DROP INDEX "executions_one_active_idx";--> statement-breakpoint
ALTER TABLE "pipelines" ALTER COLUMN "source_environment_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "kind" text DEFAULT 'run' NOT NULL;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "file_id" text;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "publisher_token" text;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "stop_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "stopped_by" jsonb;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "polls" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "last_poll_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "reconcile_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "source_kind" text DEFAULT 'environment' NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "mode" text DEFAULT 'once' NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "cursor_field" text;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "batch_interval_ms" integer DEFAULT 2500 NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "safety_lag_ms" integer DEFAULT 5000 NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "max_failed_polls" integer DEFAULT 5 NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "reconcile_every_polls" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "pipelines" ADD COLUMN "file_settings" jsonb;--> statement-breakpoint
ALTER TABLE "pipeline_files" ADD CONSTRAINT "pipeline_files_pipeline_id_pipelines_id_fk" FOREIGN KEY ("pipeline_id") REFERENCES "public"."pipelines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pipeline_files" ADD CONSTRAINT "pipeline_files_organisation_id_organisations_id_fk" FOREIGN KEY ("organisation_id") REFERENCES "public"."organisations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "pipeline_files_uploaded_idx" ON "pipeline_files" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "pipeline_files_publisher_idx" ON "pipeline_files" USING btree ("organisation_id","publisher_token");--> statement-breakpoint
CREATE INDEX "staged_file_chunks_created_idx" ON "staged_file_chunks" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "executions_publisher_idx" ON "executions" USING btree ("organisation_id","publisher_token");--> statement-breakpoint
CREATE UNIQUE INDEX "executions_one_active_idx" ON "executions" USING btree ("pipeline_id") WHERE status in ('queued', 'in_progress') and kind <> 'file';
CREATE TABLE "agent_sessions" (
	"environment_id" uuid PRIMARY KEY NOT NULL,
	"agent_id" uuid NOT NULL,
	"replica_id" text NOT NULL,
	"epoch" bigint NOT NULL,
	"connected_at" timestamp with time zone NOT NULL,
	"lease_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "agent_sessions" ADD CONSTRAINT "agent_sessions_environment_id_environments_id_fk" FOREIGN KEY ("environment_id") REFERENCES "public"."environments"("id") ON DELETE cascade ON UPDATE no action;
//! `notifctl`: a client for people. Signs in (development), sends, lists, watches, changes
//! state, deletes, subscribes, shows delivery status and health — over gRPC — and `demo` walks
//! the whole flow against a notifd on development defaults.

#![allow(clippy::print_stdout)]

mod demo;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use notif_grpc::pb;
use notif_grpc::pb::notifications_client::NotificationsClient;
use notif_grpc::pb::subscriptions_client::SubscriptionsClient;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A client for notifd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The server.
    #[arg(
        long,
        global = true,
        env = "NOTIF_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// A bearer token to use instead of the saved session.
    #[arg(long, global = true, env = "NOTIF_TOKEN")]
    token: Option<String>,
    /// The session file (default ~/.notifctl-session.json).
    #[arg(long, global = true)]
    session: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Development sign-in on a device client, then the app service's on-behalf-of exchange;
    /// saves both tokens.
    SignIn {
        #[arg(long, default_value = "alice")]
        user: String,
        #[arg(long, default_value = "demo-client")]
        client: String,
        #[arg(long, default_value = "demo-app-service")]
        service: String,
        #[arg(long, default_value = "demo-secret")]
        secret: String,
    },
    /// Sends a notification (the seed request's fields), or `--file` with the seed's JSON.
    Send(SendArguments),
    /// Lists the feed, newest first.
    List {
        /// Only unread ones.
        #[arg(long)]
        unread: bool,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Include deleted ones.
        #[arg(long)]
        all: bool,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        top: u32,
    },
    /// Shows one notification.
    Get { id: String },
    /// Follows changes live from a cursor.
    Watch {
        #[arg(long, default_value_t = 0)]
        cursor: u64,
    },
    /// Marks read.
    Read { id: String },
    /// Marks dismissed.
    Dismiss { id: String },
    /// Marks activated.
    Activate { id: String },
    /// Marks snoozed.
    Snooze { id: String },
    /// Deletes by id, `--app-notification-id` or `--group`.
    Delete {
        id: Option<String>,
        #[arg(long)]
        app_notification_id: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// Registers a device endpoint.
    Subscribe(SubscribeArguments),
    /// Lists the device endpoints.
    Subscriptions,
    /// Removes a device endpoint.
    Unsubscribe { id: String },
    /// Per-endpoint delivery status of a notification.
    Status { id: String },
    /// Checks the server's health.
    Health,
    /// Walks the whole flow against a notifd on development defaults.
    Demo,
    /// Prints the argon2 hash of a client secret, for configuration.
    HashSecret { secret: String },
}

#[derive(Debug, clap::Args)]
struct SendArguments {
    /// A JSON file in the seed request's format.
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long)]
    app_notification_id: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    body: Option<String>,
    #[arg(long)]
    raw: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Target platforms (repeatable): windows, android, ios, webpush.
    #[arg(long = "platform")]
    platforms: Vec<String>,
    #[arg(long)]
    priority: Option<String>,
    /// Display time to live, seconds.
    #[arg(long)]
    ttl: Option<i64>,
    #[arg(long, default_value = notif_auth::DEMO_HOST)]
    host: String,
}

#[derive(Debug, clap::Args)]
struct SubscribeArguments {
    /// windows, android, ios or webpush.
    #[arg(long)]
    platform: String,
    #[arg(long)]
    channel_uri: Option<String>,
    #[arg(long)]
    registration_token: Option<String>,
    #[arg(long)]
    device_token: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    environment: Option<String>,
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    p256dh: Option<String>,
    #[arg(long)]
    auth: Option<String>,
}

type Authorized = InterceptedService<Channel, Bearer>;

/// Adds the bearer token to every call.
#[derive(Debug, Clone)]
pub(crate) struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub(crate) async fn connect(server: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(server.to_owned())
        .with_context(|| format!("{server} is not a URL"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach notifd at {server}"))
}

pub(crate) fn bearer(token: &str) -> anyhow::Result<Bearer> {
    Ok(Bearer(
        format!("Bearer {token}")
            .parse()
            .context("the token is not valid header text")?,
    ))
}

pub(crate) fn notifications(
    channel: Channel,
    token: &str,
) -> anyhow::Result<NotificationsClient<Authorized>> {
    Ok(NotificationsClient::with_interceptor(
        channel,
        bearer(token)?,
    ))
}

pub(crate) fn subscriptions(
    channel: Channel,
    token: &str,
) -> anyhow::Result<SubscriptionsClient<Authorized>> {
    Ok(SubscriptionsClient::with_interceptor(
        channel,
        bearer(token)?,
    ))
}

/// A notification as JSON, for `--json` and the demo.
pub(crate) fn notification_json(notification: &pb::Notification) -> Value {
    let name = |value: &str| value.to_owned();
    json!({
        "id": notification.id,
        "appNotificationId": notification.app_notification_id,
        "groupName": notification.group_name,
        "title": notification.visual_content.as_ref().map(|visual| visual.title.clone()),
        "body": notification.visual_content.as_ref().and_then(|visual| visual.body.clone()),
        "rawContent": notification.raw_content,
        "status": name(pb::Status::try_from(notification.status).map_or("?", |status| status.as_str_name())),
        "readState": name(pb::ReadState::try_from(notification.read_state).map_or("?", |state| state.as_str_name())),
        "userActionState": name(
            pb::UserActionState::try_from(notification.user_action_state).map_or("?", |state| state.as_str_name())
        ),
        "changeSeq": notification.change_seq,
    })
}

fn print_notification(json: bool, notification: &pb::Notification) {
    let value = notification_json(notification);
    if json {
        println!("{value}");
    } else {
        let state = |key: &str, prefix: &str| {
            value[key]
                .as_str()
                .unwrap_or("?")
                .trim_start_matches(prefix)
                .to_lowercase()
        };
        println!(
            "{}  {:<28} {:<8} {:<14} seq {:<4} {}",
            notification.id,
            notification.app_notification_id,
            state("readState", "READ_STATE_"),
            state("userActionState", "USER_ACTION_STATE_"),
            notification.change_seq,
            notification
                .visual_content
                .as_ref()
                .map_or("(raw)", |visual| visual.title.as_str()),
        );
    }
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

struct Tokens {
    device: String,
    service: String,
}

fn tokens(cli: &Cli) -> anyhow::Result<Tokens> {
    if let Some(token) = &cli.token {
        return Ok(Tokens {
            device: token.clone(),
            service: token.clone(),
        });
    }
    let session = session::load(&session::path(cli.session.clone()))?;
    Ok(Tokens {
        device: session.device_token,
        service: session.service_token,
    })
}

async fn state(
    cli: &Cli,
    id: String,
    read: pb::ReadState,
    action: pb::UserActionState,
) -> anyhow::Result<()> {
    let tokens = tokens(cli)?;
    let mut client = notifications(connect(&cli.server).await?, &tokens.device)?;
    let updated = client
        .update_notification_state(pb::UpdateNotificationStateRequest {
            target: Some(pb::update_notification_state_request::Target::Id(id)),
            read_state: read as i32,
            user_action_state: action as i32,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(notification) = updated.notification {
        print_notification(cli.json, &notification);
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::SignIn {
            user,
            client,
            service,
            secret,
        } => {
            let http = reqwest::Client::new();
            let device_token = demo::sign_in(&http, &cli.server, client, user).await?;
            let service_token =
                demo::on_behalf_of(&http, &cli.server, service, secret, &device_token).await?;
            let path = session::path(cli.session.clone());
            session::save(
                &path,
                &session::Session {
                    server: cli.server.clone(),
                    user: user.clone(),
                    device_token,
                    service_token,
                },
            )?;
            println!(
                "signed in as {user} on {client}; {service} acts on your behalf; session saved to {}",
                path.display()
            );
        }
        Command::Send(arguments) => {
            let tokens = tokens(&cli)?;
            let request = send_request(arguments)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.service)?;
            let created = client
                .create_notification(request)
                .await
                .map_err(status_error)?
                .into_inner();
            if let Some(notification) = created.notification {
                if !cli.json {
                    println!(
                        "{}",
                        if created.replaced {
                            "replaced"
                        } else {
                            "created"
                        }
                    );
                }
                print_notification(cli.json, &notification);
            }
        }
        Command::List {
            unread,
            group,
            all,
            top,
        } => {
            let tokens = tokens(&cli)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.device)?;
            let page = client
                .list_notifications(pb::ListNotificationsRequest {
                    page_size: *top,
                    read_state: if *unread {
                        pb::ReadState::Unread as i32
                    } else {
                        0
                    },
                    group_name: group.clone(),
                    include_deleted: *all,
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if !cli.json {
                println!("{} unread", page.unread_count);
            }
            for notification in &page.notifications {
                print_notification(cli.json, notification);
            }
        }
        Command::Get { id } => {
            let tokens = tokens(&cli)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.device)?;
            let notification = client
                .get_notification(pb::GetNotificationRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            print_notification(cli.json, &notification);
        }
        Command::Watch { cursor } => {
            let tokens = tokens(&cli)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.device)?;
            let mut stream = client
                .watch_changes(pb::WatchChangesRequest {
                    cursor: *cursor,
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if !cli.json {
                println!("watching changes after {cursor} (Ctrl-C to stop)");
            }
            while let Some(change) = stream.message().await.map_err(status_error)? {
                print_notification(cli.json, &change);
            }
        }
        Command::Read { id } => {
            state(
                &cli,
                id.clone(),
                pb::ReadState::Read,
                pb::UserActionState::Unspecified,
            )
            .await?
        }
        Command::Dismiss { id } => {
            state(
                &cli,
                id.clone(),
                pb::ReadState::Unspecified,
                pb::UserActionState::Dismissed,
            )
            .await?;
        }
        Command::Activate { id } => {
            state(
                &cli,
                id.clone(),
                pb::ReadState::Unspecified,
                pb::UserActionState::Activated,
            )
            .await?;
        }
        Command::Snooze { id } => {
            state(
                &cli,
                id.clone(),
                pb::ReadState::Unspecified,
                pb::UserActionState::Snoozed,
            )
            .await?
        }
        Command::Delete {
            id,
            app_notification_id,
            group,
        } => {
            let tokens = tokens(&cli)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.service)?;
            let deleted = match (id, app_notification_id, group) {
                (Some(id), _, _) => {
                    client
                        .delete_notification(pb::DeleteNotificationRequest {
                            target: Some(pb::delete_notification_request::Target::Id(id.clone())),
                            ..Default::default()
                        })
                        .await
                }
                (None, Some(key), _) => {
                    client
                        .delete_notification(pb::DeleteNotificationRequest {
                            target: Some(
                                pb::delete_notification_request::Target::AppNotificationId(
                                    key.clone(),
                                ),
                            ),
                            ..Default::default()
                        })
                        .await
                }
                (None, None, Some(group)) => {
                    client
                        .delete_group(pb::DeleteGroupRequest {
                            group_name: group.clone(),
                            ..Default::default()
                        })
                        .await
                }
                (None, None, None) => bail!("name an id, --app-notification-id or --group"),
            }
            .map_err(status_error)?
            .into_inner();
            if !cli.json {
                println!("deleted {}", deleted.deleted.len());
            }
            for notification in &deleted.deleted {
                print_notification(cli.json, notification);
            }
        }
        Command::Subscribe(arguments) => {
            let tokens = tokens(&cli)?;
            let mut client = subscriptions(connect(&cli.server).await?, &tokens.device)?;
            let text = |value: &Option<String>| value.clone().unwrap_or_default();
            let response = client
                .subscribe(pb::SubscribeRequest {
                    platform: arguments.platform.clone(),
                    channel_uri: text(&arguments.channel_uri),
                    registration_token: text(&arguments.registration_token),
                    device_token: text(&arguments.device_token),
                    topic: text(&arguments.topic),
                    environment: text(&arguments.environment),
                    endpoint: text(&arguments.endpoint),
                    p256dh: text(&arguments.p256dh),
                    auth: text(&arguments.auth),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let id = response
                .subscription
                .map(|subscription| subscription.id)
                .unwrap_or_default();
            if cli.json {
                println!("{}", json!({"id": id, "renewed": response.renewed}));
            } else {
                println!(
                    "{} subscription {id}",
                    if response.renewed { "renewed" } else { "new" }
                );
            }
        }
        Command::Subscriptions => {
            let tokens = tokens(&cli)?;
            let mut client = subscriptions(connect(&cli.server).await?, &tokens.device)?;
            let list = client
                .list_subscriptions(pb::ListSubscriptionsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            for subscription in list.subscriptions {
                let platform = pb::Platform::try_from(subscription.platform)
                    .map_or("?", |platform| platform.as_str_name());
                if cli.json {
                    println!(
                        "{}",
                        json!({"id": subscription.id, "platform": platform, "client": subscription.client_id})
                    );
                } else {
                    println!(
                        "{}  {platform:<20} {}",
                        subscription.id, subscription.client_id
                    );
                }
            }
        }
        Command::Unsubscribe { id } => {
            let tokens = tokens(&cli)?;
            let mut client = subscriptions(connect(&cli.server).await?, &tokens.device)?;
            client
                .unsubscribe(pb::UnsubscribeRequest { id: id.clone() })
                .await
                .map_err(status_error)?;
            println!("unsubscribed {id}");
        }
        Command::Status { id } => {
            let tokens = tokens(&cli)?;
            let mut client = notifications(connect(&cli.server).await?, &tokens.service)?;
            let status = client
                .get_delivery_status(pb::GetDeliveryStatusRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for endpoint in status.endpoints {
                let platform = pb::Platform::try_from(endpoint.platform)
                    .map_or("?", |platform| platform.as_str_name());
                let state = pb::DeliveryState::try_from(endpoint.state)
                    .map_or("?", |state| state.as_str_name());
                if cli.json {
                    println!(
                        "{}",
                        json!({"subscription": endpoint.subscription_id, "platform": platform, "state": state, "attempts": endpoint.attempts, "reason": endpoint.reason})
                    );
                } else {
                    println!(
                        "{}  {platform:<20} {state:<28} attempts {} {}",
                        endpoint.subscription_id, endpoint.attempts, endpoint.reason
                    );
                }
            }
        }
        Command::Health => {
            let mut client =
                tonic_health::pb::health_client::HealthClient::new(connect(&cli.server).await?);
            let response = client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let serving = response.status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
            println!("{}", if serving { "serving" } else { "not serving" });
            if !serving {
                bail!("the server is not serving");
            }
        }
        Command::Demo => demo::run(&cli.server).await?,
        Command::HashSecret { secret } => println!("{}", notif_auth::hash_secret(secret)),
    }
    Ok(())
}

fn send_request(arguments: &SendArguments) -> anyhow::Result<pb::CreateNotificationRequest> {
    if let Some(path) = &arguments.file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        return demo::create_request_from_seed(&body);
    }
    let key = arguments
        .app_notification_id
        .clone()
        .context("--app-notification-id is required (or --file)")?;
    Ok(pb::CreateNotificationRequest {
        target_host_name: arguments.host.clone(),
        app_notification_id: key,
        group_name: arguments.group.clone(),
        visual_content: arguments.title.clone().map(|title| pb::VisualContent {
            title,
            body: arguments.body.clone(),
        }),
        raw_content: arguments.raw.clone(),
        platform_types: arguments.platforms.clone(),
        priority: arguments.priority.clone(),
        display_time_to_live: arguments.ttl,
        ..Default::default()
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

import { Route, Switch } from "wouter";
import { StatusCompleted } from "./api/types.gen";
import { useOnboarding } from "./api/queries";
import { Layout, Logo } from "./components/Layout";
import { TwoFactorPrompt } from "./components/TwoFactorPrompt";
import { ErrorState, Loading } from "./components/ui";
import { Dashboard } from "./pages/Dashboard";
import { Tunnels } from "./pages/Tunnels";
import { Agents } from "./pages/Agents";
import { Users } from "./pages/Users";
import { SiteFilesPage, Sites } from "./pages/Sites";
import { Certificates } from "./pages/Certificates";
import { SettingsPage } from "./pages/Settings";
import { Services } from "./pages/Services";
import { Onboarding } from "./pages/Onboarding";
import { NotFound } from "./pages/NotFound";
import { useState } from "react";

export function App() {
  return (
    <>
      <TwoFactorPrompt />
      <Shell />
    </>
  );
}

function Shell() {
  const ob = useOnboarding();
  // The wizard stays up after COMPLETED until the admin has seen the
  // one-time password and chosen "Go to Dashboard".
  const [inWizard, setInWizard] = useState(false);
  if (ob.isPending) {
    return (
      <div className="flex min-h-screen items-center justify-center">
        <Loading label="Connecting to the panel" />
      </div>
    );
  }
  // A failed refresh keeps the app up with the data it has (a revoked
  // certificate after a rotation must not hide the rotation's result).
  if (!ob.data) {
    return (
      <div className="mx-auto max-w-xl space-y-4 px-4 py-16">
        <Logo />
        <ErrorState what="The panel" error={ob.error ?? "no answer"} retry={() => ob.refetch()} />
      </div>
    );
  }
  if (ob.data.status !== StatusCompleted || inWizard) {
    return <Onboarding status={ob.data} onStay={setInWizard} />;
  }
  return (
    <Layout>
      <Switch>
        <Route path="/" component={Dashboard} />
        <Route path="/tunnels" component={Tunnels} />
        <Route path="/sites" component={Sites} />
        <Route path="/sites/:id" component={SiteFilesPage} />
        <Route path="/agents" component={Agents} />
        <Route path="/users" component={Users} />
        <Route path="/certificates" component={Certificates} />
        <Route path="/services" component={Services} />
        <Route path="/settings" component={SettingsPage} />
        <Route component={NotFound} />
      </Switch>
    </Layout>
  );
}

#!/usr/bin/env python3
"""Writes Fixtures/contoso.jsonl: the documented story of Fixtures/README.md.

The fixture is committed; this script records how it was made (run it again after
changing the story: python3 Fixtures/make_contoso.py > Fixtures/contoso.jsonl).
"""
import json
from datetime import datetime, timedelta

t = datetime(2026, 1, 5, 8, 0, 0)
out = []


def cmd(name, minutes=7, **fields):
    global t
    t += timedelta(minutes=minutes)
    out.append(json.dumps({"command": name, "at": t.strftime("%Y-%m-%dT%H:%M:%SZ"), **fields}))


def user(account, email, first=None, last=None):
    cmd("registerUser", account=account, businessEmail=email)
    cmd("validateEmail", account=account)
    if first:
        cmd("completeProfile", account=account, firstName=first, lastName=last)


C = "contoso.com"
# --- The legal forms: Contoso's MBSA -> Enterprise Agreement -> three enrollments ---
cmd("recordAgreement", licensingId="MB-CONTOSO", program="mbsa",
    contacts=[{"type": "primaryContact", "email": f"olivia@{C}"}, {"type": "noticesCorrespondent", "email": f"leo@{C}"}])
cmd("recordAgreement", licensingId="EA-CONTOSO", program="enterpriseAgreement", parent="MB-CONTOSO",
    contacts=[{"type": "primaryContact", "email": f"priya@{C}"}])
for n, region in [(1, "EMEA"), (2, "AMER"), (3, "APAC")]:
    cmd("recordAgreement", licensingId=f"EN-CONTOSO-{n}", program="enterpriseEnrollment", parent="EA-CONTOSO",
        contacts=[{"type": "onlineAccessContact", "email": f"ivan@{C}"},
                  {"type": "softwareAssuranceManager", "email": f"sara@{C}"},
                  {"type": "onlineServicesManager", "email": f"omar@{C}"},
                  {"type": "subscriptionsManager", "email": f"sue@{C}"}])
cmd("recordAgreement", licensingId="SA-CONTOSO", program="selectAgreement", parent="MB-CONTOSO",
    contacts=[{"type": "primaryContact", "email": f"priya@{C}"}])
cmd("recordAgreement", licensingId="SE-CONTOSO-1", program="selectEnrollment", parent="SA-CONTOSO",
    contacts=[{"type": "onlineAccessContact", "email": f"ivan@{C}"}])
cmd("recordAgreement", licensingId="SP-CONTOSO", program="selectPlusCustomer",
    contacts=[{"type": "primaryContact", "email": f"olivia@{C}"}],
    availableRoles=["administrator", "licensingInfo", "download", "productKeys"])
cmd("recordAgreement", licensingId="OV-CONTOSO", program="openValue",
    contacts=[{"type": "primaryContact", "email": f"priya@{C}"}, {"type": "subscriptionsManager", "email": f"sue@{C}"}])
cmd("recordAgreement", licensingId="OV-CONTOSO-OLD", program="openValue", status="inactive",
    contacts=[{"type": "primaryContact", "email": f"priya@{C}"}])
# Open Licenses bought through resellers (the Open Order form names the reseller)
cmd("recordAgreement", licensingId="OL-CONTOSO-1", program="openLicense",
    contacts=[{"type": "primaryContact", "email": f"olivia@{C}"}], authorizationNumber="CT1-4471-AX",
    resellerEmail="ruth@fabrikam-resellers.example")
cmd("recordAgreement", licensingId="OL-CONTOSO-2", program="openLicense",
    contacts=[{"type": "primaryContact", "email": f"olivia@{C}"}], authorizationNumber="CT2-9902-BQ",
    resellerEmail="ruth@fabrikam-resellers.example")
cmd("recordAgreement", licensingId="OL-CONTOSO-3", program="openLicense",
    contacts=[{"type": "primaryContact", "email": f"olivia@{C}"}], authorizationNumber="CT3-1180-KZ",
    resellerEmail="rick@litware-resellers.example")

# --- The people register and validate their business email ---
user("olivia-msa", f"olivia@{C}", "Olivia", "Owens")
user("leo-msa", f"leo@{C}")
user("priya-msa", f"priya@{C}")
user("ivan-msa", f"ivan@{C}")
user("sara-msa", f"sara@{C}")
user("omar-msa", f"omar@{C}")
user("sue-msa", f"sue@{C}")
user("ruth-msa", "ruth@fabrikam-resellers.example", "Ruth", "Reseller")
user("rick-msa", "rick@litware-resellers.example")
staff = ["anna", "ben", "carla", "dev", "emma", "felix", "gina", "hugo", "iris", "jon", "kai", "lena",
         "mia", "nico", "oscar", "paula", "quinn", "rosa", "tom", "uma", "victor", "wendy"]
for name in staff:
    user(f"{name}-msa", f"{name}@{C}")

# --- Olivia (primary contact of the MBSA, so administrator everywhere below it) delegates ---
downloads = ["anna", "ben", "carla", "dev", "emma", "felix"]
for i, name in enumerate(downloads):
    cmd("grantRoles", by="olivia-msa", email=f"{name}@{C}", licensingId=f"EN-CONTOSO-{i % 3 + 1}", roles=["download", "licensingInfo"])
for name in ["gina", "hugo"]:
    cmd("grantRoles", by="priya-msa", email=f"{name}@{C}", licensingId="EN-CONTOSO-1", roles=["productKeys"])
cmd("grantRoles", by="olivia-msa", email=f"iris@{C}", licensingId="EN-CONTOSO-2", roles=["softwareAssuranceManager"],
    saBenefits=["homeUseProgram", "trainingVouchers"])
cmd("grantRoles", by="olivia-msa", email=f"jon@{C}", licensingId="EA-CONTOSO", roles=["administrator"])
cmd("grantRoles", by="jon-msa", email=f"kai@{C}", licensingId="EN-CONTOSO-3", roles=["onlineServicesManager"])
cmd("grantRoles", by="olivia-msa", email=f"lena@{C}", licensingId="SP-CONTOSO", roles=["download", "productKeys"])
cmd("grantRoles", by="olivia-msa", email=f"mia@{C}", licensingId="OL-CONTOSO-1", roles=["licensingInfo"])
cmd("grantRoles", by="olivia-msa", email=f"nico@{C}", licensingId="OL-CONTOSO-2", roles=["licensingInfo"])
# refusals an operator will see in the output
cmd("grantRoles", by="anna-msa", email=f"anna@{C}", licensingId="EN-CONTOSO-1", roles=["administrator"])       # forbidden
cmd("grantRoles", by="olivia-msa", email=f"lena@{C}", licensingId="SP-CONTOSO", roles=["subscriptionsManager"])  # roleNotAvailable
cmd("grantRoles", by="olivia-msa", email=f"oscar@{C}", licensingId="EN-CONTOSO-1", roles=["softwareAssuranceManager"])  # missingSABenefits
# a revocation, and one that would leave no administrator
cmd("revokeRoles", by="olivia-msa", email=f"felix@{C}", licensingId="EN-CONTOSO-3", roles=["download"], minutes=60 * 24 * 3)
cmd("revokeRoles", by="olivia-msa", email=f"olivia@{C}", licensingId="SP-CONTOSO", roles=["administrator"])   # lastAdministrator

# --- Permission requests, routed to the administrators of record ---
reqs = [("req-001", "oscar", "EN-CONTOSO-1", ["licensingInfo"], "approve"),
        ("req-002", "paula", "EN-CONTOSO-2", ["download", "productKeys"], "approve"),
        ("req-003", "quinn", "EN-CONTOSO-3", ["productKeys"], "deny"),
        ("req-004", "rosa", "OV-CONTOSO", ["subscriptionsManager"], "approve"),
        ("req-005", "tom", "EA-CONTOSO", ["administrator"], "deny"),
        ("req-006", "uma", "SE-CONTOSO-1", ["download"], "approve"),
        ("req-007", "victor", "EN-CONTOSO-1", ["softwareAssuranceManager"], "pending"),
        ("req-008", "wendy", "SP-CONTOSO", ["licensingInfo"], "approve")]
for rid, name, lid, roles, outcome in reqs:
    fields = dict(requestId=rid, account=f"{name}-msa", licensingId=lid, roles=roles, comment=f"{name} needs this for the rollout")
    if "softwareAssuranceManager" in roles:
        fields["saBenefits"] = ["eLearning"]
    cmd("requestPermissions", minutes=60, **fields)
for rid, name, lid, roles, outcome in reqs:
    if outcome == "approve":
        cmd("approveRequest", by="priya-msa" if lid in ("OV-CONTOSO", "SE-CONTOSO-1") else "olivia-msa", requestId=rid, minutes=90)
    elif outcome == "deny":
        cmd("denyRequest", by="olivia-msa", requestId=rid, reason="please ask your manager first", minutes=90)
cmd("approveRequest", by="anna-msa", requestId="req-007")        # forbidden: Anna is no administrator
cmd("approveRequest", by="olivia-msa", requestId="req-003")      # requestNotPending

# --- Resellers: Ruth keeps OL-CONTOSO-1, is denied OL-CONTOSO-2 from the welcome email; Rick is
#     made administrator of OL-CONTOSO-3, then his automatic access is denied (he keeps the grant) ---
cmd("denyResellerAccess", byEmail=f"olivia@{C}", email="ruth@fabrikam-resellers.example", licensingId="OL-CONTOSO-2", via="emailLink",
    minutes=60 * 24)
cmd("grantRoles", by="olivia-msa", email="rick@litware-resellers.example", licensingId="OL-CONTOSO-3", roles=["administrator"])
cmd("denyResellerAccess", by="olivia-msa", email="rick@litware-resellers.example", licensingId="OL-CONTOSO-3", via="manageUsers")

# --- Add Open License: Mia (who has OL-CONTOSO-1 on her profile) adds OL-CONTOSO-3 correctly;
#     Nico mistypes three times within a day and is suspended for 24 hours ---
cmd("completeProfile", account="mia-msa", firstName="Mia", lastName="Moreau")
cmd("addOpenLicense", account="mia-msa", licenseNumber="OL-CONTOSO-3", authorizationNumber="CT3-1180-KZ", acknowledged=True)
cmd("completeProfile", account="nico-msa", firstName="Nico", lastName="Nakamura", minutes=60 * 24 * 2)
cmd("addOpenLicense", account="nico-msa", licenseNumber="OL-CONTOSO-1", authorizationNumber="CT1-4471-AZ", acknowledged=True)
cmd("addOpenLicense", account="nico-msa", licenseNumber="OL-CONTOSO-9", authorizationNumber="CT1-4471-AX", acknowledged=True, minutes=20)
cmd("addOpenLicense", account="nico-msa", licenseNumber="OL-CONTOSO-1", authorizationNumber="CT1-4471-XA", acknowledged=True, minutes=20)
cmd("addOpenLicense", account="nico-msa", licenseNumber="OL-CONTOSO-1", authorizationNumber="CT1-4471-AX", acknowledged=True, minutes=30)  # suspended
# Ruth adds OL-CONTOSO-2 back through Add Open License; Olivia denies that too
cmd("addOpenLicense", account="ruth-msa", licenseNumber="OL-CONTOSO-2", authorizationNumber="CT2-9902-BQ", acknowledged=True)
cmd("denyOpenLicenseAccess", by="olivia-msa", email="ruth@fabrikam-resellers.example", licensingId="OL-CONTOSO-2", minutes=120)

# --- My Permissions: removals and inheritance ---
cmd("removeLicensingId", account="ivan-msa", licensingId="EN-CONTOSO-3", minutes=60 * 24 * 2)
cmd("removeLicensingId", account="priya-msa", licensingId="EN-CONTOSO-1")     # retainedByParentContact
cmd("removeLicensingId", account="leo-msa", licensingId="MB-CONTOSO")         # cannotRemoveContact
cmd("removeLicensingId", account="jon-msa", licensingId="EN-CONTOSO-2")       # inheritedAccess: opt out instead
cmd("optOutAdminInheritance", account="jon-msa", parentId="EA-CONTOSO")
cmd("removeLicensingId", account="wendy-msa", licensingId="SP-CONTOSO")
cmd("requestPermissions", requestId="req-009", account="ivan-msa", licensingId="EN-CONTOSO-3", roles=["licensingInfo"],
    comment="removed it by mistake", minutes=60)
cmd("approveRequest", by="priya-msa", requestId="req-009", minutes=45)
cmd("setLicensingIdStatus", licensingId="EN-CONTOSO-1", status="inactive", minutes=60 * 24 * 5)

# --- Northwind: an eOpen customer and MVLS users migrated to VLSC roles ---
N = "northwind.com"
cmd("recordAgreement", licensingId="OL-NORTHWIND-1", program="openLicense",
    contacts=[{"type": "primaryContact", "email": f"nora@{N}"}], authorizationNumber="NW1-5555-QQ")
cmd("recordAgreement", licensingId="SP-NORTHWIND", program="selectPlusCustomer", contacts=[])
cmd("migrateLegacyPermission", source="eopen", legacyRole="none", email=f"ned@{N}", licensingId="OL-NORTHWIND-1")
for name, role in [("nora", "administrator"), ("nate", "userVLK"), ("nell", "user"), ("nick", "saBenefitAdministrator"),
                   ("noah", "onlineServicesBenefitAdministrator"), ("nina", "msdnBenefitAdministrator"), ("nils", "superuser")]:
    cmd("migrateLegacyPermission", source="mvls", legacyRole=role, email=f"{name}@{N}", licensingId="SP-NORTHWIND")
for name in ["nora", "ned", "nate", "nell", "nick"]:
    user(f"{name}-msa", f"{name}@{N}")
cmd("grantRoles", by="nora-msa", email=f"nell@{N}", licensingId="SP-NORTHWIND", roles=["download"])
cmd("requestPermissions", requestId="req-nw-1", account="nate-msa", licensingId="OL-NORTHWIND-1", roles=["administrator"])
cmd("approveRequest", by="ned-msa", requestId="req-nw-1")

# --- Fabrikam: a Select Plus and Open Value customer with a busy IT team, late January ---
F = "fabrikam.com"
t = datetime(2026, 1, 20, 8, 0, 0)
cmd("recordAgreement", licensingId="SA-FABRIKAM", program="selectAgreement",
    contacts=[{"type": "primaryContact", "email": f"fiona@{F}"}, {"type": "noticesCorrespondent", "email": f"frank@{F}"}])
cmd("recordAgreement", licensingId="SE-FABRIKAM-1", program="selectEnrollment", parent="SA-FABRIKAM",
    contacts=[{"type": "softwareAssuranceManager", "email": f"sven@{F}"}])
cmd("recordAgreement", licensingId="SE-FABRIKAM-2", program="selectEnrollment", parent="SA-FABRIKAM",
    contacts=[{"type": "onlineServicesManager", "email": f"otto@{F}"}])
cmd("recordAgreement", licensingId="SP-FABRIKAM", program="selectPlusCustomer",
    contacts=[{"type": "primaryContact", "email": f"fiona@{F}"}])
cmd("recordAgreement", licensingId="OV-FABRIKAM", program="openValue",
    contacts=[{"type": "primaryContact", "email": f"fiona@{F}"}, {"type": "subscriptionsManager", "email": f"sasha@{F}"}])
cmd("recordAgreement", licensingId="OL-FABRIKAM-1", program="openLicense",
    contacts=[{"type": "primaryContact", "email": f"fiona@{F}"}], authorizationNumber="FB1-2020-LM",
    resellerEmail="ruth@fabrikam-resellers.example")
for name in ["fiona", "frank", "sven", "otto", "sasha"]:
    user(f"{name}-msa", f"{name}@{F}")
team = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "ken", "liv", "max", "ned2", "ola", "pia",
        "rex", "sol", "tia", "vic", "wes", "xia", "yan", "zed"]
for name in team:
    user(f"{name}-msa", f"{name}@{F}")
ids = ["SE-FABRIKAM-1", "SE-FABRIKAM-2", "SP-FABRIKAM", "OV-FABRIKAM"]
for i, name in enumerate(team):
    lid = ids[i % len(ids)]
    roles = [["download"], ["licensingInfo", "productKeys"], ["download", "productKeys"], ["licensingInfo"]][i % 4]
    cmd("grantRoles", by="fiona-msa", email=f"{name}@{F}", licensingId=lid, roles=roles, minutes=11)
# SA benefits handed out for the Home Use Program rollout
for name in ["ada", "cy", "ed"]:
    cmd("grantRoles", by="fiona-msa", email=f"{name}@{F}", licensingId="SE-FABRIKAM-1", roles=["softwareAssuranceManager"],
        saBenefits=["homeUseProgram", "eLearning"])
cmd("grantRoles", by="fiona-msa", email=f"bo@{F}", licensingId="SA-FABRIKAM", roles=["administrator"])
cmd("grantRoles", by="bo-msa", email=f"di@{F}", licensingId="SE-FABRIKAM-2", roles=["onlineServicesManager"])
cmd("optOutAdminInheritance", account="bo-msa", parentId="SA-FABRIKAM", minutes=60 * 24)
cmd("grantRoles", by="bo-msa", email=f"flo@{F}", licensingId="SE-FABRIKAM-2", roles=["download"])  # forbidden now
cmd("optInAdminInheritance", account="bo-msa", parentId="SA-FABRIKAM")
cmd("grantRoles", by="bo-msa", email=f"flo@{F}", licensingId="SE-FABRIKAM-2", roles=["download"])
# requests, routed to fiona, frank (notices correspondent of the parent) and bo
for i, name in enumerate(["gus", "hal", "ivy", "jo", "ken", "liv"]):
    cmd("requestPermissions", requestId=f"fb-{i + 1:02d}", account=f"{name}-msa", licensingId="SE-FABRIKAM-1",
        roles=["licensingInfo", "download"], comment="Windows rollout", minutes=45)
for i in range(6):
    if i % 3 == 2:
        cmd("denyRequest", by="frank-msa", requestId=f"fb-{i + 1:02d}", reason="use the SP-FABRIKAM media instead", minutes=30)
    else:
        cmd("approveRequest", by="bo-msa" if i % 2 else "fiona-msa", requestId=f"fb-{i + 1:02d}", minutes=30)
# revocations when people change teams
for name in ["max", "ola", "rex"]:
    lid = ids[team.index(name) % len(ids)]
    roles = [["download"], ["licensingInfo", "productKeys"], ["download", "productKeys"], ["licensingInfo"]][team.index(name) % 4]
    cmd("revokeRoles", by="fiona-msa", email=f"{name}@{F}", licensingId=lid, roles=roles[:1], minutes=60 * 6)
# Ruth (the reseller) is denied here too, through Manage Users
cmd("denyResellerAccess", by="fiona-msa", email="ruth@fabrikam-resellers.example", licensingId="OL-FABRIKAM-1", via="manageUsers")
# Add Open License by colleagues who already have an Open License on their profile
cmd("grantRoles", by="fiona-msa", email=f"tia@{F}", licensingId="OL-FABRIKAM-1", roles=["licensingInfo"])
cmd("completeProfile", account="tia-msa", firstName="Tia", lastName="Tan")
cmd("addOpenLicense", account="tia-msa", licenseNumber="OL-CONTOSO-1", authorizationNumber="CT1-0000-XX", acknowledged=True)
cmd("addOpenLicense", account="tia-msa", licenseNumber="OL-FABRIKAM-1", authorizationNumber="FB1-2020-LM", acknowledged=True)
# removals and a status change
cmd("removeLicensingId", account="sol-msa", licensingId=ids[team.index("sol") % len(ids)], minutes=60 * 24)
cmd("removeLicensingId", account="frank-msa", licensingId="SE-FABRIKAM-1")   # retainedByParentContact
cmd("setLicensingIdStatus", licensingId="SE-FABRIKAM-2", status="inactive", minutes=60 * 24 * 2)
cmd("setLicensingIdStatus", licensingId="SE-FABRIKAM-2", status="active", minutes=60 * 24)

print("\n".join(out))
